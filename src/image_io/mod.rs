//! Stage 1 (image_io): finding image files, decoding them, and reading their EXIF facts.
//!
//! - [`walk`]: the recursive, sorted folder walk (DeepFaune's file list).
//! - [`decode`]: bytes to RGB pixels, EXIF orientation applied, with failures as values.
//! - [`exif`]: DateTimeOriginal and orientation.
//! - [`frames`]: which frames of a video are classified, its frame count and creation date.
//! - [`header`]: size and EXIF without decoding pixels.

pub mod decode;
pub mod exif;
pub mod frames;
pub mod header;
pub mod walk;

pub use decode::{read_image, read_image_as_stored, DecodeOptions, DecodedImage};
pub use exif::{ExifInfo, Timestamp};
pub use header::{read_header, ImageHeader};
pub use walk::{Found, MediaKind, Walker, IMAGE_EXTENSIONS};
