"""Someone else's boxes as the detection step (issue 18): ``Pipeline.run(detections=...)`` with
``json_rules="deepfaune"`` against an independent Python implementation of DeepFaune 1.4.1's
``PredictorJSON`` (tests/reference/deepfaune_json_ref.py, numpy + Pillow + onnxruntime), on
real images, rotated copies, 3- and 4-decimal coordinates, a person box more confident than the
animal box and failure rows; then what the default ``"corrected"`` rules do differently."""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import deepfaune_rs
from conftest import REPO
from reference import deepfaune_json_ref as ref
from reference.deepfaune_sequence_ref import predict as reference_predict

MANIFEST = REPO / "models" / "tiny-pixel-c38.toml"
THRESHOLD = 0.5  # classification threshold of both sides
MAXLAG = 20


def _rotated_copy(src, dst, orientation):
    """A JPEG whose pixels are stored sideways with an EXIF orientation (and the source's date)."""
    with Image.open(src) as im:
        exif = im.getexif()
        exif[0x0112] = orientation
        small = im.resize((im.width // 2, im.height // 2), Image.BILINEAR)
        small.save(dst, quality=92, exif=exif)


def _boxes(rng, decimals, n):
    out = []
    for _ in range(n):
        w, h = rng.uniform(0.08, 0.5), rng.uniform(0.08, 0.5)
        x, y = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
        out.append([round(v, decimals) for v in (x, y, w, h)])
    return out


@pytest.fixture(scope="module")
def scene(testdata, tmp_path_factory):
    """A folder of real images (symlinked), rotated copies and a MegaDetector file over them."""
    root = tmp_path_factory.mktemp("mdjson")
    buow = sorted((testdata / "buow").glob("*.JPG"))[:5]
    jaguar = sorted((testdata / "jaguar").glob("*.jpg"))[:3]
    if len(buow) < 5 or len(jaguar) < 3:
        pytest.skip("testdata buow/jaguar images not found")
    (root / "buow").mkdir()
    (root / "jaguar").mkdir()
    (root / "rotated").mkdir()
    names = []
    for p in buow:
        os.symlink(p, root / "buow" / p.name)
        names.append(f"buow/{p.name}")
    for p in jaguar:
        os.symlink(p, root / "jaguar" / p.name)
        names.append(f"jaguar/{p.name}")
    # Three copies of one dated image: one sequence of three animal images.
    for orientation in (6, 8, 3):
        name = f"rotated/r{orientation}.jpg"
        _rotated_copy(buow[0], root / name, orientation)
        names.append(name)
    # An 800 px wide image: 0.4775 * 800 is 382 in float64 and 381 in float32.
    Image.new("RGB", (800, 600), (90, 140, 60)).save(root / "jaguar" / "w800.jpg")
    names.append("jaguar/w800.jpg")

    rng = np.random.default_rng(18)
    images = []
    for i, name in enumerate(names):
        decimals = 3 if i % 2 else 4
        boxes = _boxes(rng, decimals, 3)
        dets = [
            {"category": "1", "conf": round(float(rng.uniform(0.45, 0.95)), 3), "bbox": boxes[0]},
            {"category": "1", "conf": round(float(rng.uniform(0.05, 0.4)), 3), "bbox": boxes[1]},
            {"category": "3", "conf": 0.2, "bbox": boxes[2]},
        ]
        images.append({"file": name, "detections": dets})
    by_name = {im["file"]: im for im in images}
    # A person box more confident than the animal box.
    by_name["buow/" + buow[1].name]["detections"].append(
        {"category": "2", "conf": 0.99, "bbox": [0.1, 0.1, 0.2, 0.4]}
    )
    # Only boxes at or below the threshold; then a confidence just above it (float64).
    by_name["buow/" + buow[2].name]["detections"] = [
        {"category": "1", "conf": 0.4, "bbox": [0.2, 0.2, 0.3, 0.3]}
    ]
    by_name["jaguar/" + jaguar[0].name]["detections"][0]["conf"] = 0.40000001
    # A vehicle decides; a category DeepFaune does not know decides (zero logits).
    by_name["jaguar/" + jaguar[1].name]["detections"][2]["conf"] = 0.97
    by_name["jaguar/" + jaguar[2].name]["detections"].append(
        {"category": "4", "conf": 0.98, "bbox": [0.3, 0.3, 0.1, 0.1]}
    )
    by_name["jaguar/w800.jpg"]["detections"] = [
        {"category": "1", "conf": 0.8, "bbox": [0.4775, 0.1234, 0.2, 0.3]}
    ]
    images += [
        {"file": "buow/empty.jpg", "detections": []},
        {"file": "buow/failed.jpg", "failure": "Failure image access", "detections": None},
        {"file": "jaguar/gone.jpg", "detections": [dict(images[0]["detections"][0])]},
    ]
    Image.new("RGB", (64, 48), (0, 0, 0)).save(root / "buow" / "empty.jpg")
    doc = {
        "info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle", "4": "group"},
        "images": images,
    }
    path = root / "md.json"
    path.write_text(json.dumps(doc))
    special = {
        "person": "buow/" + buow[1].name,
        "low": "buow/" + buow[2].name,
        "vehicle": "jaguar/" + jaguar[1].name,
        "group": "jaguar/" + jaguar[2].name,
    }
    return root, path, doc, special


@pytest.fixture(scope="module")
def pipeline(shared_models):
    return deepfaune_rs.Pipeline(
        None,
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=MANIFEST,
        detector_mode=None,
        score_threshold=THRESHOLD,
        maxlag_s=MAXLAG,
    )


@pytest.fixture(scope="module")
def reference(scene, shared_models):
    root, path, _, _ = scene
    rows = ref.predictor_rows(str(path), str(root))
    sess = ort.InferenceSession(
        str(shared_models / "pixel_classifier_182_c38.onnx"), providers=["CPUExecutionProvider"]
    )
    tensors = [r.tensor for r in rows if r.tensor is not None]
    crops = sess.run(["logits"], {"input": np.stack(tensors)})[0]
    kinds, logits = ref.kinds_and_logits(rows, crops, crops.shape[1])
    return rows, kinds, logits


@pytest.fixture(scope="module")
def ours(scene, pipeline):
    root, path, _, _ = scene
    return pipeline.run(root, detections=path, json_rules="deepfaune", progress=False)


def _ours_row(ours, rows) -> list[int]:
    """Our row of each reference row: the reference is in the file's order, our rows in
    DeepFaune's table order (the order of the CSV)."""
    pos = {os.path.normpath(p): i for i, p in enumerate(ours.paths)}
    assert sorted(pos) == sorted(os.path.normpath(r.filename) for r in rows)
    return [pos[os.path.normpath(r.filename)] for r in rows]


def test_rows_and_crop_rectangles_match_deepfaune(scene, ours, reference):
    root, _, doc, _ = scene
    rows, _, _ = reference
    det = ours.detections
    o = _ours_row(ours, rows)
    crops = det.crop_boxes
    checked = 0
    for j, r in enumerate(rows):
        i = o[j]
        assert det.count[i] == r.count, r.filename
        assert det.humancount[i] == 0
        if r.crop is None:
            assert tuple(crops[i]) == (-1, -1, -1, -1), r.filename
        else:
            assert tuple(crops[i]) == r.crop, r.filename
            checked += 1
    assert checked >= 8
    # Every stored box is DeepFaune's int() conversion on the stored (unrotated) size.
    by_file = {os.path.normpath(im["file"]): im for im in doc["images"]}
    for j, r in enumerate(rows):
        i = o[j]
        if det.category[i] == 255:
            continue
        w, h = (int(v) for v in det.sizes[i])
        with Image.open(r.filename) as im:
            assert (w, h) == im.size  # the stored size, not the upright one
        want = [
            ref.convert_box(b["bbox"], w, h)
            for b in by_file[os.path.relpath(r.filename, root)]["detections"]
            if b["conf"] > 0.4 and b["category"] in ("1", "2", "3")
        ]
        assert det.boxes[det.image_index == i].astype(int).tolist() == want, r.filename
    w800 = [o[j] for j, r in enumerate(rows) if r.filename.endswith("w800.jpg")][0]
    assert det.boxes[det.best_detection[w800]][0] == 382


def test_labels_scores_and_sequences_match_deepfaune(ours, reference):
    rows, kinds, logits = reference
    o = _ours_row(ours, rows)
    # Images DeepFaune classified: the same logits (same crop, same pixels, same model).
    for j, r in enumerate(rows):
        i = o[j]
        if r.category == 1 and r.tensor is not None:
            assert ours.classified[i]
            np.testing.assert_allclose(ours.logits[i], logits[j], atol=1e-4, err_msg=r.filename)
        else:
            assert not ours.classified[i]
    names = list(ours.class_names) + ["human", "vehicle", "empty", "undefined"]
    want = reference_predict(
        [r.filename for r in rows],
        [r.date for r in rows],
        kinds,
        logits,
        threshold=THRESHOLD,
        maxlag=MAXLAG,
    )
    assert [int(ours.seqnum[i]) for i in o] == want["seqnum"]
    assert [ours.predictionbase[i] for i in o] == [names[k] for k in want["predictionbase"]]
    assert [ours.prediction[i] for i in o] == [names[k] for k in want["prediction"]]
    assert [ours.top1[i] for i in o] == [names[k] for k in want["top1"]]
    np.testing.assert_allclose(ours.scorebase[o], want["scorebase"], atol=1e-6)
    np.testing.assert_allclose(ours.score[o], want["score"], atol=1e-6)
    # The scene exercises what it claims to.
    got = set(ours.predictionbase)
    assert {"human", "vehicle", "empty"} <= got
    assert any(len(set(np.flatnonzero(ours.seqnum == s))) > 1 for s in set(ours.seqnum))


def test_failures_are_listed_not_rows(scene, ours):
    root, _, _, _ = scene
    failures = {os.path.relpath(f["path"], root): f for f in ours.failures}
    assert failures["buow/failed.jpg"]["index"] is None  # dropped, as DeepFaune drops it
    assert failures["buow/failed.jpg"]["kind"] == "upstream"
    gone = failures["jaguar/gone.jpg"]
    assert gone["kind"] == "io" and gone["index"] is not None
    assert ours.predictionbase[gone["index"]] == "empty"
    assert ours.detections.count[gone["index"]] == 1  # DeepFaune keeps the count


def test_corrected_rules_differ_as_documented(scene, pipeline, ours):
    root, path, _, special = scene
    corrected = pipeline.run(root, detections=path, progress=False)
    rel = [os.path.relpath(p, root) for p in corrected.paths]
    assert "buow/failed.jpg" in rel  # a failure row
    d_rel = [os.path.relpath(p, root) for p in ours.paths]
    # A more confident person box: DeepFaune says human; corrected classifies the animal.
    k, c = d_rel.index(special["person"]), rel.index(special["person"])
    assert ours.predictionbase[k] == "human" and not ours.classified[k]
    assert corrected.detections.category[c] == 1 and corrected.classified[c]
    assert (corrected.detections.count[c], corrected.detections.humancount[c]) == (1, 1)
    assert ours.detections.count[k] == 2  # boxes of every category above 0.4
    # Rotated images: corrected sizes and boxes are those of the upright image.
    for orientation in (6, 8):
        name = f"rotated/r{orientation}.jpg"
        i, k = rel.index(name), d_rel.index(name)
        assert tuple(corrected.detections.sizes[i]) == tuple(ours.detections.sizes[k][::-1])
    # A "group" box (category 4) decides for DeepFaune: not empty, zero logits, undefined;
    # corrected maps categories by name and classifies the animal box.
    k, c = d_rel.index(special["group"]), rel.index(special["group"])
    assert ours.predictionbase[k] == "undefined" and not ours.logits[k].any()
    assert corrected.classified[c]


def test_results_read_first_are_accepted_and_rules_are_checked(scene, pipeline, ours):
    root, path, _, _ = scene
    read = deepfaune_rs.read_megadetector_json(path, rules="deepfaune")
    assert read.json_rules == "deepfaune"
    again = pipeline.run(detections=read, progress=False)
    assert again.prediction == ours.prediction
    np.testing.assert_array_equal(again.logits, ours.logits)
    with pytest.raises(deepfaune_rs.InvalidArgumentError, match="rules"):
        pipeline.run(detections=read, json_rules="corrected", progress=False)
    with pytest.raises(deepfaune_rs.InvalidArgumentError, match="no detector"):
        pipeline.run(root, progress=False)


def test_progress_and_resume(scene, pipeline, ours, tmp_path):
    root, path, _, _ = scene
    seen = []
    ckpt = tmp_path / "run.checkpoint"

    def stop_after_5(done, total):
        seen.append((done, total))
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipeline.run(
            root, detections=path, json_rules="deepfaune", progress=stop_after_5, checkpoint=ckpt
        )
    assert seen[0] == (1, len(ours)) and seen[-1][0] == 5
    lines = ckpt.read_text().splitlines()
    assert 2 <= len(lines) <= 6  # header + the rows complete when it stopped
    resumed = pipeline.run(
        root, detections=path, json_rules="deepfaune", progress=False, checkpoint=ckpt
    )
    assert resumed.prediction == ours.prediction
    assert resumed.paths == ours.paths
    np.testing.assert_array_equal(resumed.logits, ours.logits)
    # Other rules, other boxes: the checkpoint is refused.
    with pytest.raises(deepfaune_rs.InvalidArgumentError, match="checkpoint"):
        pipeline.run(root, detections=path, progress=False, checkpoint=ckpt)


def test_cli_run_with_detections(scene, shared_models, tmp_path):
    from deepfaune_rs.cli import main

    root, path, _, _ = scene
    out = tmp_path / "table.csv"
    args = ["run", str(root), "--detections", str(path), "--json-rules", "deepfaune"]
    args += ["--classifier", str(shared_models / "pixel_classifier_182_c38.onnx")]
    args += ["--classifier-manifest", str(MANIFEST), "-o", str(out), "--no-progress"]
    args += ["--json", str(tmp_path / "md.json")]
    status = main(args)
    assert status == 3  # the failure rows and the missing file are reported
    import csv

    with open(out, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 14  # 15 rows in the file, the failure row dropped
    assert {r["humancount"] for r in table} == {"0"}
    written = json.loads((tmp_path / "md.json").read_text())
    assert len(written["images"]) == 14
