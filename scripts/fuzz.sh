#!/usr/bin/env bash
# Fuzzes every parser of files for SECONDS each (default 150): image decoding + EXIF, the EXIF
# date parser, the MegaDetector batch-file reader, the model-manifest TOML parser, the
# re-identification knowledge base (CSV + safetensors) and checkpoint lines.
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain. Not run in CI.
# Runs at the lowest CPU priority. A crash leaves its input in fuzz/artifacts/<target>/: fix it,
# then keep the input in tests/fuzz-regressions/<target>/ (replayed by `cargo test`).
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-150}"
TARGETS=(decode_image exif megadetector_json manifest_toml kb_files checkpoint_record)
# `scripts/fuzz.sh SECONDS TARGET...` fuzzes only those targets.
if [ $# -gt 1 ]; then TARGETS=("${@:2}"); fi

for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    cp tests/fuzz-regressions/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
done
cp models/*.toml fuzz/corpus/manifest_toml/
# Small valid images of every format as starting points (Pillow, when installed).
python3 - <<'PY' || echo "no Pillow: image seeds skipped"
import io, pathlib
from PIL import Image
out = pathlib.Path("fuzz/corpus/decode_image")
im = Image.new("RGB", (8, 6), (10, 200, 30))
exif = Image.Exif()
exif[0x0112] = 6
for fmt, mode, kw in [("JPEG", "RGB", {"exif": exif}), ("JPEG", "CMYK", {}), ("JPEG", "L", {}),
                      ("PNG", "RGB", {}), ("PNG", "P", {}), ("GIF", "P", {}), ("BMP", "RGB", {}),
                      ("TIFF", "RGB", {}), ("WEBP", "RGB", {})]:
    buf = io.BytesIO()
    im.convert(mode).save(buf, fmt, **kw)
    (out / f"seed-{fmt.lower()}-{mode}").write_bytes(buf.getvalue())
    (pathlib.Path("fuzz/corpus/exif") / f"seed-{fmt.lower()}-{mode}").write_bytes(buf.getvalue())
PY

nice -n 19 cargo +nightly fuzz build -O || exit 1
status=0
for t in "${TARGETS[@]}"; do
    echo "== $t: ${SECONDS_EACH}s"
    max_len=4096
    [ "$t" = decode_image ] && max_len=65536
    if ! nice -n 19 cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len="$max_len" -rss_limit_mb=2048 -timeout=20 \
        -print_final_stats=1 2>&1 | tail -n 25; then
        status=1
    fi
done
echo "crash inputs, if any:"
find fuzz/artifacts -type f 2>/dev/null || true
exit $status
