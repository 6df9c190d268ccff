//! ONNX Runtime, loaded at run time from a shared library (`ort`'s `load-dynamic`).
//!
//! The Python package finds `libonnxruntime` inside the installed `onnxruntime` wheel and calls
//! [`init`] once at import. Rust callers (tests, benches) may instead set `DEEPFAUNE_ORT_DYLIB`
//! (or ort's own `ORT_DYLIB_PATH`) and rely on [`environment`] to load it lazily.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::error::RuntimeError;

static ENV: OnceLock<Environment> = OnceLock::new();
static INIT_LOCK: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Environment variables consulted, in order, by [`environment`] when [`init`] was not called.
pub const DYLIB_ENV_VARS: [&str; 2] = ["DEEPFAUNE_ORT_DYLIB", "ORT_DYLIB_PATH"];

/// Loads ONNX Runtime from `path` and creates the process-wide environment.
///
/// Calling it again with any path is a no-op once a runtime is loaded (a process holds one).
pub fn init(path: &Path) -> Result<(), RuntimeError> {
    let mut loaded = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if ENV.get().is_some() {
        return Ok(());
    }
    if !path.is_file() {
        return Err(RuntimeError::NotFound(format!(
            "no file at {}; install it with `pip install \"onnxruntime>=1.31\"` or set DEEPFAUNE_ORT_DYLIB to libonnxruntime",
            path.display()
        )));
    }
    let builder = ort::init_from(path).map_err(|e| {
        RuntimeError::NotFound(format!(
            "{} could not be loaded ({e}); deepfaune-rs needs ONNX Runtime >= 1.31: `pip install -U \"onnxruntime>=1.31\"`",
            path.display()
        ))
    })?;
    let env = builder.with_name("deepfaune-rs").build()?;
    let _ = ENV.set(env);
    *loaded = Some(path.to_path_buf());
    Ok(())
}

/// The loaded library's path, if [`init`] succeeded.
pub fn loaded_path() -> Option<PathBuf> {
    INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The process-wide environment, loading the library from [`DYLIB_ENV_VARS`] if needed.
pub fn environment() -> Result<&'static Environment, RuntimeError> {
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    for var in DYLIB_ENV_VARS {
        if let Some(p) = std::env::var_os(var) {
            init(Path::new(&p))?;
            return ENV
                .get()
                .ok_or_else(|| RuntimeError::NotFound("initialisation failed".into()));
        }
    }
    Err(RuntimeError::NotFound(
        "ONNX Runtime is not loaded: install `onnxruntime>=1.31` (pip) or set DEEPFAUNE_ORT_DYLIB to the libonnxruntime shared library".into(),
    ))
}

/// How a session uses the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionOptions {
    /// Intra-op threads (0 = ONNX Runtime's default, one per core).
    pub intra_threads: usize,
    /// Whether idle pool threads spin. Off by default: on small machines the spinning threads
    /// steal the cores that decode the next images.
    pub spinning: bool,
}

/// Where a model's bytes come from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A file on disk.
    File(PathBuf),
    /// Bytes compiled into the library (the embedded default detector).
    Static(&'static [u8]),
}

impl ModelSource {
    /// A short identity of the weights for checkpoints: path, size and modification time of a
    /// file, or the length of embedded bytes.
    pub fn identity(&self) -> String {
        match self {
            ModelSource::File(p) => {
                let meta = std::fs::metadata(p).ok();
                let size = meta.as_ref().map_or(0, |m| m.len());
                let mtime = meta
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                let path = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                format!("{}|{size}|{mtime}", path.display())
            }
            ModelSource::Static(b) => format!("embedded|{}", b.len()),
        }
    }
}

/// Builds a CPU inference session.
pub fn new_session(source: &ModelSource, opts: SessionOptions) -> Result<Session, RuntimeError> {
    let env = environment()?;
    let mut b = Session::builder(env)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| RuntimeError::Ort(e.to_string()))?
        .with_intra_op_spinning(opts.spinning)
        .map_err(|e| RuntimeError::Ort(e.to_string()))?
        .with_inter_op_spinning(false)
        .map_err(|e| RuntimeError::Ort(e.to_string()))?;
    if opts.intra_threads > 0 {
        b = b
            .with_intra_threads(opts.intra_threads)
            .map_err(|e| RuntimeError::Ort(e.to_string()))?;
    }
    let session = match source {
        ModelSource::File(p) => b.commit_from_file(p)?,
        ModelSource::Static(bytes) => b.commit_from_memory(bytes)?,
    };
    Ok(session)
}
