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

/// Where a model runs: an ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// The CPU (always available).
    #[default]
    Cpu,
    /// NVIDIA GPUs (the `onnxruntime-gpu` build).
    Cuda,
    /// DirectX 12 GPUs on Windows (the `onnxruntime-directml` build).
    DirectMl,
    /// Apple's Core ML (macOS builds).
    CoreMl,
    /// The first of CUDA, DirectML, Core ML that the build has, else the CPU.
    Auto,
}

/// The devices a user can name, in the order `Auto` tries the accelerators.
pub const DEVICE_NAMES: [&str; 5] = ["cpu", "cuda", "directml", "coreml", "auto"];

impl Device {
    /// Parses `cpu`, `cuda`, `directml`, `coreml` or `auto` (case-insensitive).
    pub fn parse(s: &str) -> Result<Device, RuntimeError> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda),
            "directml" | "dml" => Ok(Device::DirectMl),
            "coreml" => Ok(Device::CoreMl),
            "auto" => Ok(Device::Auto),
            _ => Err(RuntimeError::Unavailable(format!(
                "unknown device '{s}': use one of {}",
                DEVICE_NAMES.join(", ")
            ))),
        }
    }

    /// The user-facing name.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::DirectMl => "directml",
            Device::CoreMl => "coreml",
            Device::Auto => "auto",
        }
    }

    fn provider_available(self) -> Result<bool, RuntimeError> {
        use ort::ep::ExecutionProvider;
        Ok(match self {
            Device::Cpu | Device::Auto => true,
            Device::Cuda => ort::ep::CUDA::is_available()?,
            Device::DirectMl => ort::ep::DirectML::is_available()?,
            Device::CoreMl => ort::ep::CoreML::is_available()?,
        })
    }

    fn hint(self) -> &'static str {
        match self {
            Device::Cuda => {
                "install the GPU build: pip install \"deepfaune-rs[gpu]\" (it replaces onnxruntime with onnxruntime-gpu)"
            }
            Device::DirectMl => {
                "install the DirectML build (Windows): pip install \"deepfaune-rs[directml]\""
            }
            Device::CoreMl => "Core ML is in the onnxruntime wheels for macOS only",
            _ => "",
        }
    }
}

/// The devices the loaded ONNX Runtime build can run on (always `cpu`).
pub fn available_devices() -> Result<Vec<&'static str>, RuntimeError> {
    environment()?;
    let mut out = vec!["cpu"];
    for d in [Device::Cuda, Device::DirectMl, Device::CoreMl] {
        if d.provider_available()? {
            out.push(d.name());
        }
    }
    Ok(out)
}

/// The device `requested` resolves to with the loaded build: itself when available (`Auto`:
/// the first accelerator available, else the CPU); an unavailable one is a one-line error
/// naming those that are.
pub fn resolve_device(requested: Device) -> Result<Device, RuntimeError> {
    environment()?;
    if requested == Device::Auto {
        for d in [Device::Cuda, Device::DirectMl, Device::CoreMl] {
            if d.provider_available()? {
                return Ok(d);
            }
        }
        return Ok(Device::Cpu);
    }
    if requested.provider_available()? {
        return Ok(requested);
    }
    Err(RuntimeError::Unavailable(format!(
        "device '{}' is not available in this ONNX Runtime build (available: {}); {}",
        requested.name(),
        available_devices()?.join(", "),
        requested.hint()
    )))
}

/// How a session uses the CPU.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionOptions {
    /// Intra-op threads (0 = ONNX Runtime's default, one per core).
    pub intra_threads: usize,
    /// Whether idle pool threads spin. Off by default: on small machines the spinning threads
    /// steal the cores that decode the next images.
    pub spinning: bool,
    /// Execution provider.
    pub device: Device,
    /// Use each model's int8 variant (`deepfaune-rs models quantize ID`) instead of its fp32 one.
    pub int8: bool,
    /// A folder where ONNX Runtime's optimised graph of each file model is kept, so the next
    /// session of the same file starts without optimising it again (`None`: not kept).
    pub cache_dir: Option<PathBuf>,
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

/// Where the optimised graph of `path` is cached: a name from the file's identity (path, size,
/// modification time) and the ONNX Runtime library, so a changed file or runtime is optimised
/// again rather than read stale.
fn cached_graph_path(dir: &Path, source: &ModelSource, device: Device) -> Option<PathBuf> {
    let ModelSource::File(p) = source else {
        return None;
    };
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    source.identity().hash(&mut h);
    loaded_path().hash(&mut h);
    device.name().hash(&mut h);
    let stem = p.file_stem()?.to_string_lossy();
    Some(dir.join(format!("{stem}.{:016x}.ort.onnx", h.finish())))
}

/// Builds an inference session on the device of `opts` (see [`resolve_device`]).
///
/// With `opts.cache_dir`, a file model's graph optimised by ONNX Runtime is written there on the
/// first session (through a temporary name and a rename) and read instead of the original,
/// with optimisation off, on the next ones.
pub fn new_session(source: &ModelSource, opts: SessionOptions) -> Result<Session, RuntimeError> {
    let env = environment()?;
    let device = resolve_device(opts.device)?;
    let cached = opts
        .cache_dir
        .as_deref()
        .and_then(|d| cached_graph_path(d, source, device));
    let reuse = cached.as_ref().filter(|p| p.is_file());
    let level = if reuse.is_some() {
        GraphOptimizationLevel::Disable
    } else {
        GraphOptimizationLevel::Level3
    };
    let mut b = Session::builder(env)?
        .with_optimization_level(level)
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
    match device {
        Device::Cpu | Device::Auto => {}
        Device::Cuda => {
            b = b
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| RuntimeError::Ort(e.to_string()))?
        }
        Device::DirectMl => {
            b = b
                .with_execution_providers([ort::ep::DirectML::default().build().error_on_failure()])
                .map_err(|e| RuntimeError::Ort(e.to_string()))?
        }
        Device::CoreMl => {
            b = b
                .with_execution_providers([ort::ep::CoreML::default().build().error_on_failure()])
                .map_err(|e| RuntimeError::Ort(e.to_string()))?
        }
    }
    if let Some(p) = reuse {
        return Ok(b.commit_from_file(p)?);
    }
    let mut tmp = None;
    if let Some(target) = &cached {
        if let Some(dir) = target.parent() {
            if std::fs::create_dir_all(dir).is_ok() {
                let t = target.with_extension(format!("tmp{}", std::process::id()));
                b = b
                    .with_optimized_model_path(&t)
                    .map_err(|e| RuntimeError::Ort(e.to_string()))?;
                tmp = Some(t);
            }
        }
    }
    let session = match source {
        ModelSource::File(p) => b.commit_from_file(p)?,
        ModelSource::Static(bytes) => b.commit_from_memory(bytes)?,
    };
    if let (Some(t), Some(target)) = (tmp, &cached) {
        // A cache that cannot be written only costs the next start its optimisation.
        if std::fs::rename(&t, target).is_err() {
            let _ = std::fs::remove_file(&t);
        }
    }
    Ok(session)
}
