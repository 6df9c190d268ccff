//! The build script's nasm check (build.rs), run against stand-in `nasm` programs on a PATH made
//! for each case: found, outdated, missing, and targets that need none.

#[allow(dead_code)]
#[path = "../build.rs"]
mod build_script;

use build_script::{check_nasm, nasm_needed, warnings, Nasm};
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// Held by each test while it writes a stand-in `nasm` and runs the check. Tests run on parallel
/// threads: a `fork` in one test while another still holds its script open for writing leaves
/// the script busy in the child until `exec`, and running it then fails with ETXTBSY ("Text file
/// busy", seen once in CI). One test at a time writing or spawning rules that out.
static SPAWN: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    SPAWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A folder holding an executable `nasm` shell script that prints `version` like `nasm -v`.
#[cfg(unix)]
fn fake_nasm(dir: &Path, version: &str) -> OsString {
    use std::os::unix::fs::PermissionsExt;
    let exe = dir.join("nasm");
    std::fs::write(&exe, format!("#!/bin/sh\necho '{version}'\n")).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.as_os_str().to_owned()
}

#[cfg(unix)]
#[test]
fn a_current_nasm_is_found_and_gives_no_warning() {
    let _guard = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let path = fake_nasm(dir.path(), "NASM version 2.16.01");
    let status = check_nasm("x86_64", Some(&path));
    assert_eq!(status, Nasm::Found("NASM version 2.16.01".into()));
    assert!(warnings(&status).is_empty());
}

#[cfg(unix)]
#[test]
fn a_0x_nasm_is_refused_like_mozjpeg_sys_does() {
    let _guard = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let path = fake_nasm(dir.path(), "NASM version 0.98.39 compiled on Feb 25 2005");
    let status = check_nasm("x86", Some(&path));
    assert!(matches!(status, Nasm::Outdated(ref v) if v.starts_with("NASM version 0.98")));
    let lines = warnings(&status);
    assert!(lines
        .iter()
        .any(|l| l.contains("too old") && l.contains("0.98.39")));
}

#[test]
fn no_nasm_on_path_warns_with_the_fix() {
    let _guard = one_at_a_time();
    let empty = tempfile::tempdir().unwrap();
    let status = check_nasm("x86_64", Some(empty.path().as_os_str()));
    assert!(matches!(status, Nasm::Missing(_)), "{status:?}");
    let text = warnings(&status).join("\n");
    assert!(text.contains("nasm was not found on PATH"), "{text}");
    assert!(text.contains("WITHOUT its SIMD code"), "{text}");
    assert!(
        text.contains("apt install nasm") && text.contains("brew install nasm"),
        "{text}"
    );
    assert!(text.contains("cargo clean -p mozjpeg-sys"), "{text}");
}

#[test]
fn arm_and_other_targets_need_no_nasm_even_when_it_is_missing() {
    let _guard = one_at_a_time();
    let empty = tempfile::tempdir().unwrap();
    for arch in ["aarch64", "arm", "wasm32", "riscv64"] {
        assert!(!nasm_needed(arch));
        assert_eq!(
            check_nasm(arch, Some(empty.path().as_os_str())),
            Nasm::NotNeeded
        );
        assert!(warnings(&Nasm::NotNeeded).is_empty());
    }
    assert!(nasm_needed("x86_64") && nasm_needed("x86"));
}
