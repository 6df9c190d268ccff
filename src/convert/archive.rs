//! The zip archive of a `torch.save` file: its members by name, and each stored member's bytes
//! read in place from a read-only memory map of the file (deflated members are inflated).

use std::collections::HashMap;
use std::io::Read;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use super::{ConvertError, Result};

/// The bytes of a whole file: a read-only memory map (Unix) or the file read into memory.
pub struct FileBytes {
    #[cfg(unix)]
    map: Option<Mmap>,
    #[cfg(not(unix))]
    data: Vec<u8>,
}

#[cfg(unix)]
struct Mmap {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and private; it is only read through `&[u8]`.
#[cfg(unix)]
unsafe impl Send for Mmap {}
#[cfg(unix)]
unsafe impl Sync for Mmap {}

#[cfg(unix)]
impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len come from a successful mmap and are unmapped once.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

impl FileBytes {
    /// Maps (or reads) `path`.
    pub fn open(path: &Path) -> std::io::Result<FileBytes> {
        #[cfg(unix)]
        {
            use std::os::unix::io::AsRawFd;
            let file = std::fs::File::open(path)?;
            let len = usize::try_from(file.metadata()?.len())
                .map_err(|_| std::io::Error::other("file too large to map"))?;
            if len == 0 {
                return Ok(FileBytes { map: None });
            }
            // SAFETY: a private read-only mapping of an open file; the pointer is checked.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            Ok(FileBytes {
                map: Some(Mmap { ptr, len }),
            })
        }
        #[cfg(not(unix))]
        {
            Ok(FileBytes {
                data: std::fs::read(path)?,
            })
        }
    }

    /// Whether the bytes are a memory map of the file (not a copy).
    pub fn is_mapped(&self) -> bool {
        #[cfg(unix)]
        {
            self.map.is_some()
        }
        #[cfg(not(unix))]
        {
            false
        }
    }
}

impl Deref for FileBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        #[cfg(unix)]
        {
            match &self.map {
                // SAFETY: the mapping lives as long as self and is `len` readable bytes.
                Some(m) => unsafe { std::slice::from_raw_parts(m.ptr as *const u8, m.len) },
                None => &[],
            }
        }
        #[cfg(not(unix))]
        {
            &self.data
        }
    }
}

/// Bytes shared between tensors: a slice of the mapped file, or an inflated member.
#[derive(Clone)]
pub enum Shared {
    /// `len` bytes at `start` of the file.
    File {
        /// The whole file.
        file: Arc<FileBytes>,
        /// Where the bytes start.
        start: usize,
        /// How many.
        len: usize,
    },
    /// Bytes of their own.
    Owned(Arc<Vec<u8>>),
}

impl Deref for Shared {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Shared::File { file, start, len } => &file[*start..*start + *len],
            Shared::Owned(v) => v,
        }
    }
}

/// A member of the archive, from the central directory.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its name in the archive.
    pub name: String,
    method: u16,
    compressed: u64,
    /// Its size once read.
    pub size: u64,
    header_offset: u64,
}

/// A zip archive over a file's bytes.
pub struct Archive {
    file: Arc<FileBytes>,
    members: Vec<Member>,
    by_name: HashMap<String, usize>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn damaged(what: &str) -> ConvertError {
    ConvertError::Checkpoint(format!("damaged archive: {what}"))
}

impl Archive {
    /// Reads the central directory of `file`; `Ok(None)` when it is not a zip archive at all.
    pub fn new(file: Arc<FileBytes>) -> Result<Option<Archive>> {
        let b: &[u8] = &file;
        const EOCD: &[u8] = b"PK\x05\x06";
        let lo = b.len().saturating_sub(22 + 65535);
        let Some(eocd) = (lo..=b.len().saturating_sub(22))
            .rev()
            .find(|&i| b.len() >= 22 && &b[i..i + 4] == EOCD)
        else {
            return Ok(None);
        };
        let mut count = u64::from(le16(b, eocd + 10));
        let mut cd_size = u64::from(le32(b, eocd + 12));
        let mut cd_offset = u64::from(le32(b, eocd + 16));
        // ZIP64: the locator just before the end record points at the ZIP64 end record.
        if eocd >= 20 && &b[eocd - 20..eocd - 16] == b"PK\x06\x07" {
            let at = usize::try_from(le64(b, eocd - 12)).map_err(|_| damaged("zip64 offset"))?;
            if at + 56 > b.len() || &b[at..at + 4] != b"PK\x06\x06" {
                return Err(damaged("zip64 end record"));
            }
            count = le64(b, at + 32);
            cd_size = le64(b, at + 40);
            cd_offset = le64(b, at + 48);
        }
        let start = usize::try_from(cd_offset).map_err(|_| damaged("central directory"))?;
        let end = start
            .checked_add(usize::try_from(cd_size).map_err(|_| damaged("central directory"))?)
            .filter(|&e| e <= b.len())
            .ok_or_else(|| damaged("central directory past the end of file"))?;
        let mut members = Vec::new();
        let mut at = start;
        for _ in 0..count {
            if at + 46 > end || &b[at..at + 4] != b"PK\x01\x02" {
                return Err(damaged("central directory entry"));
            }
            let method = le16(b, at + 10);
            let mut compressed = u64::from(le32(b, at + 20));
            let mut size = u64::from(le32(b, at + 24));
            let name_len = usize::from(le16(b, at + 28));
            let extra_len = usize::from(le16(b, at + 30));
            let comment_len = usize::from(le16(b, at + 32));
            let mut header_offset = u64::from(le32(b, at + 42));
            let name_end = at + 46 + name_len;
            let extra_end = name_end + extra_len;
            if extra_end + comment_len > end {
                return Err(damaged("central directory entry"));
            }
            let name = String::from_utf8_lossy(&b[at + 46..name_end]).into_owned();
            // ZIP64 extra field: the 64-bit values of the fields that hold 0xFFFFFFFF, in order.
            let mut e = name_end;
            while e + 4 <= extra_end {
                let (id, len) = (le16(b, e), usize::from(le16(b, e + 2)));
                let body = e + 4;
                if body + len > extra_end {
                    break;
                }
                if id == 1 {
                    let mut p = body;
                    for field in [&mut size, &mut compressed, &mut header_offset] {
                        if *field == 0xFFFF_FFFF && p + 8 <= body + len {
                            *field = le64(b, p);
                            p += 8;
                        }
                    }
                }
                e = body + len;
            }
            members.push(Member {
                name,
                method,
                compressed,
                size,
                header_offset,
            });
            at = extra_end + comment_len;
        }
        let by_name = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        Ok(Some(Archive {
            file,
            members,
            by_name,
        }))
    }

    /// The members, in the central directory's order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member called `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.by_name.get(name).map(|&i| &self.members[i])
    }

    /// The bytes of `m`: in place for a stored member, inflated for a deflated one.
    pub fn read(&self, m: &Member) -> Result<Shared> {
        let b: &[u8] = &self.file;
        let at = usize::try_from(m.header_offset).map_err(|_| damaged(&m.name))?;
        if at + 30 > b.len() || &b[at..at + 4] != b"PK\x03\x04" {
            return Err(damaged(&format!("member {}", m.name)));
        }
        // The local header's extra field may differ from the central directory's.
        let start = at + 30 + usize::from(le16(b, at + 26)) + usize::from(le16(b, at + 28));
        let clen = usize::try_from(m.compressed).map_err(|_| damaged(&m.name))?;
        if start.checked_add(clen).is_none_or(|e| e > b.len()) {
            return Err(damaged(&format!(
                "member {} runs past the end of file",
                m.name
            )));
        }
        match m.method {
            0 => Ok(Shared::File {
                file: Arc::clone(&self.file),
                start,
                len: clen.min(usize::try_from(m.size).unwrap_or(usize::MAX)),
            }),
            8 => {
                let mut out = Vec::with_capacity(usize::try_from(m.size).unwrap_or(0).min(1 << 30));
                flate2::read::DeflateDecoder::new(&b[start..start + clen])
                    .take(m.size)
                    .read_to_end(&mut out)
                    .map_err(|e| damaged(&format!("member {}: {e}", m.name)))?;
                Ok(Shared::Owned(Arc::new(out)))
            }
            other => Err(ConvertError::Checkpoint(format!(
                "member {} uses zip compression method {other}, which torch.save never writes",
                m.name
            ))),
        }
    }
}
