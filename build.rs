//! Build script: says loudly when `nasm` is missing.
//!
//! On x86 and x86-64 the JPEG decoder's SIMD code (mozjpeg-sys, libjpeg-turbo's `jsimd_*`) is
//! assembled with `nasm`. Without it, mozjpeg-sys falls back to plain C and its own warning is
//! hidden, because cargo shows build-script warnings of local packages only: the build succeeds
//! and decoding is silently slower. This script runs the same check as mozjpeg-sys (`nasm -v`
//! found on `PATH`, not a 0.x version) and prints `cargo:warning=` lines that cargo, maturin and
//! `pip install -v` show. ARM, AArch64 and other targets assemble their SIMD code with the C
//! compiler and need no nasm. `tests/build_script.rs` tests the check.

use std::ffi::OsStr;
use std::process::Command;

/// What the check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nasm {
    /// The target's SIMD code does not use nasm.
    NotNeeded,
    /// `nasm -v` answered with this version line.
    Found(String),
    /// `nasm` could not be run (the error).
    Missing(String),
    /// `nasm -v` answered with a 0.x version, which mozjpeg-sys refuses.
    Outdated(String),
}

/// Whether the SIMD code of this target architecture (`CARGO_CFG_TARGET_ARCH`) is nasm code.
pub fn nasm_needed(target_arch: &str) -> bool {
    matches!(target_arch, "x86_64" | "x86")
}

/// Runs `nasm -v` the way mozjpeg-sys does, looking it up in `path` (a `PATH` value) when given,
/// else in this process's `PATH`.
pub fn check_nasm(target_arch: &str, path: Option<&OsStr>) -> Nasm {
    if !nasm_needed(target_arch) {
        return Nasm::NotNeeded;
    }
    let mut cmd = Command::new("nasm");
    cmd.arg("-v");
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    match cmd.output() {
        Err(e) => Nasm::Missing(e.to_string()),
        Ok(out) => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            // mozjpeg-sys's own test: anything that runs is used, except a 0.x version.
            if version.contains("NASM version 0.") {
                Nasm::Outdated(version)
            } else {
                Nasm::Found(version)
            }
        }
    }
}

/// The warning lines for a check result (empty when all is well).
pub fn warnings(status: &Nasm) -> Vec<String> {
    let why = match status {
        Nasm::NotNeeded | Nasm::Found(_) => return Vec::new(),
        Nasm::Missing(e) => format!("nasm was not found on PATH ({e})."),
        Nasm::Outdated(v) => format!("nasm is too old ({v}); version 2 or later is needed."),
    };
    vec![
        "==================== deepfaune-rs: NO SIMD JPEG DECODER ====================".into(),
        why,
        "The JPEG decoder is being built WITHOUT its SIMD code: it works, with the same".into(),
        "results, but decoding camera-trap JPEGs is about 2x slower.".into(),
        "Install nasm and rebuild: apt install nasm | dnf install nasm | brew install nasm |"
            .into(),
        "winget install nasm (then put it on PATH). If you built before, also run".into(),
        "`cargo clean -p mozjpeg-sys` so the decoder is rebuilt with it.".into(),
        "=============================================================================".into(),
    ]
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // Installing nasm (or reaching it through another PATH) must re-run the check.
    println!("cargo:rerun-if-env-changed=PATH");
    let target_arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    for line in warnings(&check_nasm(&target_arch, None)) {
        println!("cargo:warning={line}");
    }
}
