//! Downloading one file: HTTP(S) (rustls, no proxy) or `file://`, into `.NAME.part` beside its
//! final name, resumed with a `Range` request (and `If-Range`, the first response's validator,
//! kept in `.NAME.part.json`), retried with exponential back-off, one download of a file per
//! folder at a time (`.NAME.part.lock`), checked (`verify.rs`) and only then renamed.
//!
//! What the caller sees goes through [`Hooks`]: lines for the user, bytes received, and the
//! pause between attempts (Python's `time.sleep`, so that Ctrl-C stops it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::verify::{check, Expect};
use super::LOCK_NAME;
use crate::error::{Error, ModelError};
use crate::fsio::sync_dir;

/// Attempts per URL after the first one (connection errors, timeouts, cut transfers, HTTP 5xx).
pub const RETRIES: u32 = 4;
/// First back-off delay in seconds; doubled after each failed attempt, at most [`BACKOFF_MAX_S`].
pub const BACKOFF_S: f64 = 1.0;
/// The longest pause between two attempts, in seconds.
pub const BACKOFF_MAX_S: f64 = 30.0;
/// Socket timeout of one request (seconds without any byte).
pub const TIMEOUT_S: f64 = 60.0;
/// Bytes written (and reported) at a time, at most.
const CHUNK: usize = 1 << 20;
/// The longest time between two reports of the bytes received.
const REPORT_EVERY: Duration = Duration::from_millis(100);
/// HTTP statuses worth another try.
const RETRY_STATUS: [u16; 7] = [408, 425, 429, 500, 502, 503, 504];
/// Comma-separated host names: when set, a download from any other host is refused before a
/// connection is made (a network where only a mirror may be reached; the tests: 127.0.0.1).
pub const ALLOWED_HOSTS_ENV: &str = "DEEPFAUNE_RS_ALLOWED_HOSTS";

/// The host of an `http(s)://` URL (no user, port or brackets).
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    }
}

/// Why `url` may not be asked for under the allowed hosts `allowed` (None: every host is).
fn refused_host(url: &str, allowed: Option<&str>) -> Option<String> {
    let allowed = allowed?;
    let host = host_of(url);
    let listed = allowed
        .split(',')
        .map(str::trim)
        .any(|h| !h.is_empty() && h.eq_ignore_ascii_case(host));
    (!listed).then(|| format!("host {host} is not in {ALLOWED_HOSTS_ENV} ({allowed})"))
}

/// What a transfer tells its caller and asks of it. An error from a hook (Ctrl-C in Python)
/// stops the download at once, keeping the `.part` for the next call.
pub trait Hooks {
    /// A line for the user: what is downloaded from where, why an attempt is retried.
    fn say(&mut self, text: &str) -> Result<(), Error>;
    /// `done` bytes of `total` (None: not announced) of `name` are on disk; `end` on the last
    /// call of an attempt.
    fn bytes(&mut self, name: &str, done: u64, total: Option<u64>, end: bool) -> Result<(), Error>;
    /// Waits `seconds` before the next attempt.
    fn sleep(&mut self, seconds: f64) -> Result<(), Error>;
}

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Attempts per URL after the first.
    pub retries: u32,
    /// Seconds without a byte before an attempt is given up.
    pub timeout_s: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            retries: RETRIES,
            timeout_s: TIMEOUT_S,
        }
    }
}

/// A file downloaded, checked and placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Its final path.
    pub path: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// The URL it came from (empty: a complete `.part` left by an earlier call, of unknown origin).
    pub url: String,
}

/// Why an attempt failed.
#[derive(Debug)]
enum Failure {
    /// This URL will not give the file (404, 403, a bad certificate...): try the next one.
    Permanent(String),
    /// Worth another try after a pause.
    Transient(String),
    /// Stop everything (the `.part` cannot be written, a hook said stop).
    Fatal(Error),
}

/// `1.2 MB`, as the progress lines write sizes.
pub fn fmt_bytes(n: u64) -> String {
    let mut v = n as f64;
    for unit in ["B", "kB", "MB"] {
        if v < 1000.0 {
            return if unit == "B" {
                format!("{v:.0} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1000.0;
    }
    format!("{v:.1} GB")
}

/// The `.part` and its metadata for `name` in `folder`.
struct Part {
    data: PathBuf,
    meta: PathBuf,
}

impl Part {
    fn new(folder: &Path, name: &str) -> Self {
        Part {
            data: folder.join(format!(".{name}.part")),
            meta: folder.join(format!(".{name}.part.json")),
        }
    }

    fn len(&self) -> u64 {
        fs::metadata(&self.data).map_or(0, |m| m.len())
    }

    fn meta(&self) -> Value {
        fs::read(&self.meta)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}))
    }

    fn discard(&self) {
        let _ = fs::remove_file(&self.data);
        let _ = fs::remove_file(&self.meta);
    }
}

fn meta_str(meta: &Value, key: &str) -> Option<String> {
    meta.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn meta_total(meta: &Value) -> Option<u64> {
    meta.get("total").and_then(Value::as_u64).filter(|&n| n > 0)
}

/// One download of a file into a folder at a time (two would write the same `.part`): an
/// exclusive `flock` on `.NAME.part.lock`, removed (while still held) when dropped.
struct Exclusive {
    path: PathBuf,
    /// Holds the lock until dropped (after the file is removed).
    #[cfg(unix)]
    _file: File,
}

impl Exclusive {
    #[cfg(unix)]
    fn take(path: PathBuf, name: &str, folder: &Path) -> Result<Self, Error> {
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::io::AsRawFd;
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::Output {
                    path: folder.to_path_buf(),
                    reason: format!("cannot write in the model directory: {e}"),
                })?;
            // SAFETY: flock on a descriptor this function owns; no memory is shared.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                return Err(ModelError::Download(format!(
                    "another process is downloading {name} into {}; wait for it to finish (or \
                     stop it), then run the fetch again",
                    folder.display()
                ))
                .into());
            }
            // The holder before us may have removed that file: then lock the new one.
            let same = match (fs::metadata(&path), file.metadata()) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same {
                return Ok(Exclusive { path, _file: file });
            }
        }
    }

    /// Windows: no advisory lock; the checks still catch a mixed file.
    #[cfg(not(unix))]
    fn take(path: PathBuf, _name: &str, _folder: &Path) -> Result<Self, Error> {
        Ok(Exclusive { path })
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        // Removed while still locked: a waiting process then locks a new file.
        let _ = fs::remove_file(&self.path);
    }
}

/// Downloads file `name` into `folder` from the first of `urls` that gives it, checks it against
/// `expect` and gives it its final name atomically. A refusal is `ChecksumError` (only when
/// every URL gave a refused file, else `DownloadError` naming what each URL answered).
pub fn download(
    name: &str,
    urls: &[String],
    folder: &Path,
    expect: &Expect,
    retry: Retry,
    hooks: &mut dyn Hooks,
) -> Result<Downloaded, Error> {
    fs::create_dir_all(folder).map_err(|e| Error::Output {
        path: folder.to_path_buf(),
        reason: format!("cannot create the model directory: {e}"),
    })?;
    if urls.is_empty() {
        return Err(ModelError::Download(format!(
            "{name}: its manifest gives no download URL (set {} to a server that has it, or put \
             it in {})",
            super::ENV_BASE_URL,
            folder.display()
        ))
        .into());
    }
    let _held = Exclusive::take(folder.join(format!(".{name}.part.lock")), name, folder)?;
    let part = Part::new(folder, name);
    let lock_path = folder.join(LOCK_NAME);
    let dest = folder.join(name);
    // A .part already complete (the process stopped between the download and the rename) is
    // checked as it is: asking for the bytes after its end would only get a 416.
    let have = part.len();
    let meta = part.meta();
    if have > 0 && Some(have) == expect.size.or_else(|| meta_total(&meta)) {
        match check(&part.data, name, expect, &lock_path) {
            Ok(h) => {
                place(&part, &dest)?;
                let url = meta_str(&meta, "url").unwrap_or_default();
                return Ok(Downloaded {
                    path: dest,
                    sha256: h.sha256,
                    url,
                });
            }
            Err(_) => part.discard(), // start over
        }
    }
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs_f64(retry.timeout_s))
        .timeout_read(Duration::from_secs_f64(retry.timeout_s))
        .timeout_write(Duration::from_secs_f64(retry.timeout_s))
        .user_agent(&format!("deepfaune-rs/{}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut tried: Vec<String> = Vec::new();
    let mut refused: Vec<ModelError> = Vec::new();
    for url in urls {
        let mut delay = BACKOFF_S;
        let mut attempt = 0;
        loop {
            match transfer(&agent, url, &part, name, hooks) {
                Ok(()) => {}
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Permanent(why)) => {
                    tried.push(format!("{url}: {why}"));
                    break;
                }
                Err(Failure::Transient(why)) => {
                    if attempt >= retry.retries {
                        tried.push(format!("{url}: {why} ({} attempts)", attempt + 1));
                        break;
                    }
                    attempt += 1;
                    hooks.say(&format!("  {why}; retrying in {delay} s"))?;
                    hooks.sleep(delay)?;
                    delay = (delay * 2.0).min(BACKOFF_MAX_S);
                    continue;
                }
            }
            match check(&part.data, name, expect, &lock_path) {
                Ok(h) => {
                    place(&part, &dest)?;
                    return Ok(Downloaded {
                        path: dest,
                        sha256: h.sha256,
                        url: url.clone(),
                    });
                }
                Err(e) => {
                    part.discard();
                    tried.push(format!("{url}: refused ({e})"));
                    refused.push(ModelError::Refused(format!("{e} (from {url})")));
                    break;
                }
            }
        }
    }
    if !refused.is_empty() && refused.len() == tried.len() {
        return Err(refused.swap_remove(0).into());
    }
    Err(ModelError::Download(format!("could not download {name}: {}", tried.join("; "))).into())
}

/// The checked `.part` takes its final name (atomic rename, then the folder synced).
fn place(part: &Part, dest: &Path) -> Result<(), Error> {
    fs::rename(&part.data, dest).map_err(|e| Error::Output {
        path: dest.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(dir) = dest.parent() {
        sync_dir(dir);
    }
    let _ = fs::remove_file(&part.meta);
    Ok(())
}

/// What the first error of a transport failure (and its causes) says, in a few words.
fn transport_reason(t: &ureq::Transport) -> String {
    let mut source = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return io_reason(io);
        }
        source = e.source();
    }
    t.message()
        .map(String::from)
        .unwrap_or_else(|| t.kind().to_string())
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::UnexpectedEof => "connection closed".into(),
        _ => e.to_string(),
    }
}

fn write_error(part: &Part, e: io::Error) -> Failure {
    Failure::Fatal(Error::Output {
        path: part.data.clone(),
        reason: e.to_string(),
    })
}

/// `bytes START-END/TOTAL` -> (START, TOTAL or None for `*`).
fn content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (span, total) = rest.split_once('/')?;
    let (start, _) = span.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

/// One attempt: `url` into the `.part`, continuing what it holds. Returns when the file is
/// complete (as far as the server says); what arrived stays in the `.part` otherwise.
fn transfer(
    agent: &ureq::Agent,
    url: &str,
    part: &Part,
    name: &str,
    hooks: &mut dyn Hooks,
) -> Result<(), Failure> {
    let fatal = Failure::Fatal;
    if let Some(rest) = url.strip_prefix("file://") {
        // A mirror on a shared drive: the whole file, read again from the start.
        hooks
            .say(&format!("downloading {name} from {url}"))
            .map_err(fatal)?;
        let path = PathBuf::from(super::percent_decode(rest));
        let src = File::open(&path).map_err(|e| Failure::Permanent(io_reason(&e)))?;
        let total = src.metadata().ok().map(|m| m.len());
        fs::write(&part.meta, json!({"url": url, "total": total}).to_string())
            .map_err(|e| write_error(part, e))?;
        return copy_body(src, part, 0, total, name, hooks);
    }
    if let Some(why) = refused_host(url, std::env::var(ALLOWED_HOSTS_ENV).ok().as_deref()) {
        return Err(Failure::Permanent(why));
    }
    let mut have = part.len();
    let meta = if have > 0 { part.meta() } else { json!({}) };
    let mut req = agent.get(url).set("Accept-Encoding", "identity");
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
        let validator = meta_str(&meta, "etag").or_else(|| meta_str(&meta, "last_modified"));
        if let Some(v) = validator.filter(|_| meta_str(&meta, "url").as_deref() == Some(url)) {
            req = req.set("If-Range", &v);
        }
        hooks
            .say(&format!(
                "resuming {name} at {} from {url}",
                fmt_bytes(have)
            ))
            .map_err(fatal)?;
    } else {
        hooks
            .say(&format!("downloading {name} from {url}"))
            .map_err(fatal)?;
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(416, _)) => {
            // Our part is not a prefix the server can continue: start again.
            part.discard();
            return Err(Failure::Transient(
                "the server refused to resume (HTTP 416); restarting".into(),
            ));
        }
        Err(ureq::Error::Status(code, r)) => {
            let why = format!("HTTP {code} {}", r.status_text())
                .trim()
                .to_string();
            return Err(if RETRY_STATUS.contains(&code) {
                Failure::Transient(why)
            } else {
                Failure::Permanent(why)
            });
        }
        Err(ureq::Error::Transport(t)) => {
            let why = transport_reason(&t);
            return Err(match t.kind() {
                ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => {
                    Failure::Permanent(why)
                }
                _ if t.to_string().contains("certificate") => Failure::Permanent(why),
                _ => Failure::Transient(why),
            });
        }
    };
    let length = resp
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let total = match resp.status() {
        206 if have > 0 => {
            let range = resp.header("Content-Range").and_then(content_range);
            let Some((start, total)) = range.filter(|(s, _)| *s == have) else {
                part.discard();
                return Err(Failure::Transient(
                    "the server resumed at another offset; restarting".into(),
                ));
            };
            let before = meta_total(&meta);
            let total = total.or(before);
            if before.is_some() && total != before {
                // Another file than the part's.
                part.discard();
                return Err(Failure::Transient(format!(
                    "the file's size changed ({} -> {}); restarting",
                    before.unwrap_or(0),
                    total.map_or("?".into(), |t| t.to_string())
                )));
            }
            have = start;
            total
        }
        200 => {
            // No resume (a 200 to a Range): start over.
            have = 0;
            let m = json!({
                "url": url,
                "etag": resp.header("ETag"),
                "last_modified": resp.header("Last-Modified"),
                "total": length,
            });
            fs::write(&part.meta, m.to_string()).map_err(|e| write_error(part, e))?;
            length
        }
        s => return Err(Failure::Permanent(format!("unexpected HTTP status {s}"))),
    };
    copy_body(resp.into_reader(), part, have, total, name, hooks)
}

/// The body into the `.part` (appended from `have`, or written anew when `have` is 0), synced.
fn copy_body(
    mut body: impl Read,
    part: &Part,
    mut have: u64,
    total: Option<u64>,
    name: &str,
    hooks: &mut dyn Hooks,
) -> Result<(), Failure> {
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .append(have > 0)
        .truncate(have == 0)
        .open(&part.data)
        .map_err(|e| write_error(part, e))?;
    let mut buf = vec![0u8; CHUNK];
    let (mut cut, mut eof) = (None, false);
    hooks
        .bytes(name, have, total, false)
        .map_err(Failure::Fatal)?;
    while !eof && cut.is_none() {
        // Up to a chunk per write and per report (a read gives a few kB), but a report at least
        // every REPORT_EVERY: each report takes the GIL and checks for Ctrl-C.
        let (started, mut filled) = (Instant::now(), 0);
        while filled < buf.len() && started.elapsed() < REPORT_EVERY {
            match body.read(&mut buf[filled..]) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    cut = Some(io_reason(&e));
                    break;
                }
            }
        }
        if filled > 0 {
            out.write_all(&buf[..filled])
                .map_err(|e| write_error(part, e))?;
            have += filled as u64;
            if let Err(e) = hooks.bytes(name, have, total, false) {
                let _ = out.flush();
                return Err(Failure::Fatal(e));
            }
        }
    }
    out.flush().map_err(|e| write_error(part, e))?;
    out.sync_all().map_err(|e| write_error(part, e))?;
    drop(out);
    hooks
        .bytes(name, have, total, true)
        .map_err(Failure::Fatal)?;
    let of = total.map_or("?".into(), |t| t.to_string());
    if let Some(why) = cut {
        return Err(Failure::Transient(format!(
            "connection lost after {have} of {of} bytes ({why})"
        )));
    }
    match total {
        Some(t) if have < t => Err(Failure::Transient(format!(
            "connection closed after {have} of {t} bytes"
        ))),
        Some(t) if have > t => {
            part.discard();
            Err(Failure::Transient(format!(
                "received {have} bytes, more than the announced {t}; restarting"
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;

    // FIPS 180-2's sha256 of b"abc" (independent of the crate).
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    /// How the test server answers request `n` (0-based) asking for bytes from `range`.
    #[derive(Clone, Copy)]
    pub(crate) enum Reply {
        /// The whole file (200), cut after so many body bytes.
        Full(Option<usize>),
        /// Honour the Range (206), cut after so many body bytes.
        Ranged(Option<usize>),
        /// This status, no body.
        Status(u16),
    }

    /// The (Range header, status) of each request.
    pub(crate) type Log = Arc<Mutex<Vec<(Option<String>, u16)>>>;

    /// A one-file HTTP server on 127.0.0.1 in a thread; logs (Range header, status).
    pub(crate) struct Server {
        pub url: String,
        pub log: Log,
    }

    pub(crate) fn serve(
        data: Vec<u8>,
        reply: impl Fn(usize, Option<u64>) -> Reply + Send + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/f.bin", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { return };
                let mut range = None;
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                        range = Some(v.trim().to_string());
                    }
                }
                let start = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.trim_end_matches('-').parse::<u64>().ok());
                let answer = reply(n, start);
                let (status, head, body, cut) = match answer {
                    Reply::Status(s) => (s, String::new(), &data[..0], None),
                    Reply::Full(cut) => (200, String::new(), &data[..], cut),
                    Reply::Ranged(cut) => {
                        let s = start.unwrap_or(0) as usize;
                        let head = format!(
                            "Content-Range: bytes {s}-{}/{}\r\n",
                            data.len() - 1,
                            data.len()
                        );
                        (206, head, &data[s..], cut)
                    }
                };
                seen.lock().unwrap().push((range, status));
                let text = match status {
                    200 => "OK",
                    206 => "Partial Content",
                    404 => "Not Found",
                    _ => "Error",
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} {text}\r\nContent-Length: {}\r\nETag: \"v1\"\r\n{head}\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(&body[..cut.unwrap_or(body.len()).min(body.len())]);
            }
        });
        Server { url, log }
    }

    /// Records what the transfer says and the pauses it asks for.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub said: Vec<String>,
        pub slept: Vec<f64>,
        pub last: Option<(u64, Option<u64>)>,
    }

    impl Hooks for Recorder {
        fn say(&mut self, text: &str) -> Result<(), Error> {
            self.said.push(text.to_string());
            Ok(())
        }
        fn bytes(&mut self, _: &str, done: u64, total: Option<u64>, _: bool) -> Result<(), Error> {
            self.last = Some((done, total));
            Ok(())
        }
        fn sleep(&mut self, seconds: f64) -> Result<(), Error> {
            self.slept.push(seconds);
            Ok(())
        }
    }

    /// Bytes that are no repeated pattern (a shifted restart would show).
    fn payload(n: usize) -> Vec<u8> {
        (0..n as u64)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn get(
        srv: &Server,
        dir: &Path,
        expect: &Expect,
        rec: &mut Recorder,
    ) -> Result<Downloaded, Error> {
        let retry = Retry {
            retries: 2,
            timeout_s: 10.0,
        };
        download(
            "f.bin",
            std::slice::from_ref(&srv.url),
            dir,
            expect,
            retry,
            rec,
        )
    }

    #[test]
    fn a_partial_part_is_resumed_with_a_range_request() {
        let data = payload(300_000);
        let srv = serve(data.clone(), |_, _| Reply::Ranged(None));
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".f.bin.part"), &data[..100_000]).unwrap();
        let meta = json!({"url": srv.url, "etag": "\"v1\"", "total": data.len()});
        fs::write(dir.path().join(".f.bin.part.json"), meta.to_string()).unwrap();
        let mut rec = Recorder::default();
        let d = get(&srv, dir.path(), &Expect::default(), &mut rec).unwrap();
        assert_eq!(
            *srv.log.lock().unwrap(),
            [(Some("bytes=100000-".to_string()), 206)]
        );
        assert_eq!(fs::read(&d.path).unwrap(), data);
        assert_eq!(d.url, srv.url);
        assert_eq!(
            rec.said,
            [format!("resuming f.bin at 100.0 kB from {}", srv.url)]
        );
        assert_eq!(rec.last, Some((300_000, Some(300_000))));
        assert_eq!(names(dir.path()), ["f.bin"]);
    }

    #[test]
    fn a_server_ignoring_range_restarts_from_zero() {
        let srv = serve(b"abc".to_vec(), |_, _| Reply::Full(None));
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".f.bin.part"), b"xy").unwrap();
        let expect = Expect {
            sha256: ABC_SHA256.into(),
            ..Default::default()
        };
        let d = get(&srv, dir.path(), &expect, &mut Recorder::default()).unwrap();
        assert_eq!(*srv.log.lock().unwrap(), [(Some("bytes=2-".into()), 200)]);
        assert_eq!(fs::read(&d.path).unwrap(), b"abc");
        assert_eq!(d.sha256, ABC_SHA256);
    }

    #[test]
    fn a_dropped_connection_is_retried_where_it_stopped() {
        let data = payload(50_000);
        let srv = serve(data.clone(), |n, start| match (n, start) {
            (0, _) => Reply::Full(Some(20_000)),
            _ => Reply::Ranged(None),
        });
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::default();
        let d = get(&srv, dir.path(), &Expect::default(), &mut rec).unwrap();
        assert_eq!(
            *srv.log.lock().unwrap(),
            [(None, 200), (Some("bytes=20000-".into()), 206)]
        );
        assert_eq!(fs::read(&d.path).unwrap(), data);
        assert_eq!(rec.slept, [BACKOFF_S]);
        assert!(rec.said[1].contains("connection"), "{:?}", rec.said);
        assert!(rec.said[1].ends_with("retrying in 1 s"), "{:?}", rec.said);
    }

    #[test]
    fn retries_back_off_then_one_line_keeping_the_part() {
        let srv = serve(payload(10_000), |_, _| Reply::Full(Some(1000)));
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::default();
        let e = get(&srv, dir.path(), &Expect::default(), &mut rec).unwrap_err();
        assert!(matches!(e, Error::Model(ModelError::Download(_))));
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("could not download f.bin: {}: ", srv.url)),
            "{msg}"
        );
        assert!(
            msg.ends_with("(3 attempts)") && !msg.contains('\n'),
            "{msg}"
        );
        assert_eq!(rec.slept, [1.0, 2.0]);
        // Every answer is a 200 cut after 1000 bytes: each attempt starts over.
        assert_eq!(
            fs::metadata(dir.path().join(".f.bin.part")).unwrap().len(),
            1000
        );
        assert!(!dir.path().join("f.bin").exists());
    }

    #[test]
    fn a_404_is_one_line_not_retried() {
        let srv = serve(Vec::new(), |_, _| Reply::Status(404));
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::default();
        let e = get(&srv, dir.path(), &Expect::default(), &mut rec).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("could not download f.bin: {}: HTTP 404 Not Found", srv.url)
        );
        assert!(rec.slept.is_empty());
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_checksum_mismatch_leaves_no_file() {
        let srv = serve(b"abd".to_vec(), |_, _| Reply::Full(None));
        let dir = tempfile::tempdir().unwrap();
        let expect = Expect {
            sha256: ABC_SHA256.into(),
            ..Default::default()
        };
        let e = get(&srv, dir.path(), &expect, &mut Recorder::default()).unwrap_err();
        assert!(matches!(e, Error::Model(ModelError::Refused(_))), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(ABC_SHA256) && msg.ends_with(&format!("(from {})", srv.url)));
        assert!(names(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn one_download_of_a_file_at_a_time() {
        let srv = serve(b"abc".to_vec(), |_, _| Reply::Full(None));
        let dir = tempfile::tempdir().unwrap();
        let held = Exclusive::take(dir.path().join(".f.bin.part.lock"), "f.bin", dir.path());
        let e = get(
            &srv,
            dir.path(),
            &Expect::default(),
            &mut Recorder::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("another process is downloading f.bin"),
            "{e}"
        );
        assert!(srv.log.lock().unwrap().is_empty());
        drop(held);
        get(
            &srv,
            dir.path(),
            &Expect::default(),
            &mut Recorder::default(),
        )
        .unwrap();
        assert_eq!(names(dir.path()), ["f.bin"]);
    }

    #[test]
    fn a_file_url_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share dir");
        fs::create_dir(&share).unwrap();
        fs::write(share.join("f.bin"), b"abc").unwrap();
        let url = format!("file://{}/f.bin", share.display()).replace(' ', "%20");
        let out = dir.path().join("models");
        let d = download(
            "f.bin",
            std::slice::from_ref(&url),
            &out,
            &Expect::default(),
            Retry::default(),
            &mut Recorder::default(),
        )
        .unwrap();
        assert_eq!((d.sha256.as_str(), d.url), (ABC_SHA256, url));
        assert_eq!(names(&out), ["f.bin"]);
    }

    #[test]
    fn sizes_and_content_ranges_read_as_written() {
        assert_eq!(fmt_bytes(999), "999 B");
        assert_eq!(fmt_bytes(100_000), "100.0 kB");
        assert_eq!(fmt_bytes(1_212_611_300), "1.2 GB");
        assert_eq!(content_range("bytes 10-19/20"), Some((10, Some(20))));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, None)));
        assert_eq!(content_range("items 1-2/3"), None);
    }

    #[test]
    fn only_the_allowed_hosts_are_asked_for() {
        let local = Some("127.0.0.1, localhost");
        assert_eq!(refused_host("https://huggingface.co/a.pt", None), None);
        assert_eq!(refused_host("http://127.0.0.1:8123/df.pt", local), None);
        assert_eq!(refused_host("http://user@LOCALHOST/x?y#z", local), None);
        assert_eq!(
            refused_host("https://huggingface.co/a.pt", local).as_deref(),
            Some("host huggingface.co is not in DEEPFAUNE_RS_ALLOWED_HOSTS (127.0.0.1, localhost)")
        );
        assert!(refused_host("http://[::1]:80/a", local).is_some());
        assert_eq!(refused_host("http://[::1]:80/a", Some("::1")), None);
        // A host named like an allowed one is not it; an empty list allows nothing.
        assert!(refused_host("http://127.0.0.1.evil.example/a", local).is_some());
        assert!(refused_host("http://127.0.0.1/a", Some("")).is_some());
    }
}
