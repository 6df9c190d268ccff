//! Bindings of the MegaDetector reader (export stage, read direction).

use std::path::{Path, PathBuf};

use pyo3::prelude::*;

use super::args::renamed;
use super::detect::PyDetectionResults;
use super::errors::{to_pyerr, IntoPyResult};
use crate::error::Error;
use crate::import::megadetector::{read, JsonRules, ReadOptions};

/// Reads a MegaDetector batch file (formats 1.0 to 1.6; MegaDetector v5/v1000, SpeciesNet's
/// MegaDetector-format output, AddaxAI, ours) as detection results, to classify and sequence
/// with ``Pipeline.run(..., detections=...)``.
///
/// Coordinates and confidences stay float64 from the JSON text through the pixel conversion
/// and the threshold test, as Python gives them to DeepFaune: boxes count when
/// ``conf > detection_threshold`` (default DeepFaune's 0.4; ``threshold``, its old name, is
/// deprecated), and their normalised coordinates become pixels
/// with each image's size (read from its header, no decoding) as DeepFaune's
/// ``convertJSONboxToBox`` does: ``x1 = int(x * width)``, ``x2 = x1 + int(w * width)``.
/// ``root`` is the folder the file's paths are relative to (default: the JSON file's folder).
/// Species classifications in the file are kept (:attr:`DetectionResult.classifications`).
///
/// ``rules`` (see :data:`JSON_RULES`) says how boxes become per-image decisions:
///
/// ``"corrected"`` (default), the package's rules, as for its own detection runs:
///   the most confident **animal** box is classified even when a person box is more
///   confident; ``count`` counts animal boxes and ``humancount`` person boxes; sizes and boxes
///   are those of the image after its EXIF orientation; categories are mapped by name
///   (animal, person or human, vehicle), so other tools' numbering works; rows the file marks
///   as failed, and images that cannot be read, are rows of category ``"failed"`` listed in
///   :attr:`DetectionResult.failures`.
///
/// ``"deepfaune"``, DeepFaune 1.4.1's ``PredictorJSON`` exactly, quirks included:
///
/// 1. rows with a ``failure`` are dropped (no row; still listed in ``failures`` with
///    ``index`` None); a row with ``"detections": null`` and no failure (DeepFaune crashes)
///    too;
/// 2. the most confident box of **any** category decides the image (numpy ``argmax``, the
///    first one on ties); if it is not above the threshold the image is empty, whatever the
///    other boxes;
/// 3. its category is ``int(category id)``, ignoring ``detection_categories``: "1" animal,
///    "2" human, "3" vehicle, "0" empty, any other number an image that is "not empty" with
///    all-zero logits (an animal image with a uniform softmax: ``undefined``); so a person box
///    more confident than an animal box makes the image ``human`` and the animal is never
///    classified;
/// 4. ``count`` is the number of boxes **of every category** above the threshold (0 for an
///    empty image) and ``humancount`` is always 0;
/// 5. **no EXIF orientation**: DeepFaune reads the image as stored (``cv2.imdecode`` with
///    ``IMREAD_UNCHANGED``), converts the box with the stored width and height and crops the
///    stored pixels; the sizes and boxes of these results are in that stored grid;
/// 6. an animal image whose file cannot be read is empty but keeps its ``count`` (here: a
///    failure row with that count, listed in ``failures``);
/// 7. where DeepFaune crashes (a person or vehicle box on an unreadable file, grayscale or
///    16-bit images, a category id that is not a number) the image is read as RGB or listed as
///    a failure instead.
///
/// >>> import json, tempfile, pathlib
/// >>> d = pathlib.Path(tempfile.mkdtemp())
/// >>> _ = (d / "r.json").write_text(json.dumps({"images": [
/// ...     {"file": "gone.jpg", "failure": "Failure image access", "detections": None}]}))
/// >>> res = read_megadetector_json(d / "r.json")
/// >>> res.category_names, res.failures[0]["kind"]
/// (['failed'], 'upstream')
/// >>> len(read_megadetector_json(d / "r.json", rules="deepfaune"))  # DeepFaune drops the row
/// 0
#[pyfunction]
#[pyo3(signature = (path, root = None, detection_threshold = None, rules = "corrected", *, threshold = None))]
pub(crate) fn read_megadetector_json(
    py: Python<'_>,
    path: PathBuf,
    root: Option<PathBuf>,
    detection_threshold: Option<f64>,
    rules: &str,
    threshold: Option<f64>,
) -> PyResult<PyDetectionResults> {
    let given = renamed(
        py,
        "detection_threshold",
        detection_threshold,
        "threshold",
        threshold,
    )?;
    let threshold = given.unwrap_or(DEEPFAUNE_JSON_THRESHOLD);
    let rules = JsonRules::parse(rules).py()?;
    if !(0.0..=1.0).contains(&threshold) {
        return Err(to_pyerr(Error::InvalidArgument(format!(
            "threshold {threshold}: use a value within 0..1"
        ))));
    }
    let root = match root {
        Some(r) => r,
        // The JSON file's folder, symbolic links resolved (as pathlib's `resolve()`).
        None => path
            .canonicalize()
            .or_else(|_| std::path::absolute(&path))
            .map_err(|e| to_pyerr(Error::InvalidArgument(format!("{}: {e}", path.display()))))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let opts = ReadOptions {
        root: Some(root.clone()),
        threshold,
        rules,
    };
    let imported = py.detach(|| read(&path, &opts)).py()?;
    let mut res = PyDetectionResults::imported(imported);
    res.root = Some(root);
    Ok(res)
}

/// DeepFaune's threshold for boxes read from a MegaDetector file.
pub(crate) const DEEPFAUNE_JSON_THRESHOLD: f64 = 0.4;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_megadetector_json, m)?)?;
    Ok(())
}
