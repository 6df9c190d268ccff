#!/usr/bin/env bash
# The project's test command (README: "Run the tests"): Rust unit tests, the type stubs against the
# compiled module, then the Python tests against the installed package. ONNX Runtime for the Rust
# tests comes from the onnxruntime wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
DEEPFAUNE_ORT_DYLIB="$(python -c 'import deepfaune_rs._runtime as r; print(r.find_library())')"
export DEEPFAUNE_ORT_DYLIB
cargo test --locked
python -m mypy.stubtest deepfaune_rs._core deepfaune_rs.errors
# Two test files at a time (pytest-xdist; a file's tests stay in one process, so its module
# fixtures are built once): most tests wait on a subprocess, a server or Python code, so the two
# cores stay busy. PYTEST_WORKERS=0 runs them one after the other.
python -m pytest -q -n "${PYTEST_WORKERS:-2}" --dist loadfile tests
