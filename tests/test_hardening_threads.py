"""Threads and Ctrl-C: no Rust lock is taken while holding the GIL (issue 17, part 1).

Each scenario runs in a subprocess with a timeout: a deadlock fails the test instead of hanging
CI. The progress callback holds a run at a known point, so the scenarios are deterministic."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

TIMEOUT = 60

PRELUDE = """
import os, signal, sys, threading, time
import deepfaune_rs
images = sys.argv[1:]
"""


def _run(body: str, images: list[str]) -> subprocess.CompletedProcess:
    code = PRELUDE + textwrap.dedent(body)
    try:
        return subprocess.run(
            [sys.executable, "-c", code, *images],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"hung (deadlock?) after {TIMEOUT} s; output so far: {e.stdout!r} {e.stderr!r}")


@pytest.fixture(scope="module")
def images(testdata) -> list[str]:
    return [str(p) for p in sorted((testdata / "southwest").glob("*.jpg"))[:3]]


def test_two_threads_detect_on_one_detector(images):
    p = _run(
        """
        det = deepfaune_rs.Detector("md-lite")
        out = {}
        def work(k):
            out[k] = det.detect(images, progress=False)
        ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        a, b = out[0], out[1]
        assert len(a) == len(b) == len(images)
        assert (a.confidences == b.confidences).all() and (a.boxes == b.boxes).all()
        print("ok")
        """,
        images,
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_properties_answer_during_a_run(images, shared_models):
    # The run's progress callback waits (GIL released) until the main thread has read the
    # properties: before the fix the getters blocked on the run's lock while holding the GIL.
    p = _run(
        f"""
        det = deepfaune_rs.Detector("md-lite")
        pipe = deepfaune_rs.Pipeline(
            det, {str(shared_models / "pixel_classifier_182_c38.onnx")!r},
            classifier_manifest={str(REPO / "models" / "tiny-pixel-c38.toml")!r})
        started, read = threading.Event(), threading.Event()
        def progress(done, total):
            started.set()
            read.wait(30)
        t = threading.Thread(target=lambda: pipe.run(images, progress=progress))
        t.start()
        assert started.wait(30)
        t0 = time.monotonic()
        names, thr, models = pipe.class_names, pipe.detector.threshold, det.models
        assert len(names) == 38 and 0 < thr < 1 and models == ["md-lite"], (names, thr, models)
        assert time.monotonic() - t0 < 5
        read.set()
        t.join()
        print("ok")
        """,
        images,
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_ctrl_c_while_waiting_for_a_busy_detector(images):
    # A background thread holds the detector (its progress callback waits); the main thread
    # calls detect() on the same detector and gets SIGINT: KeyboardInterrupt must come at once.
    p = _run(
        """
        det = deepfaune_rs.Detector("md-lite")
        started, release = threading.Event(), threading.Event()
        def progress(done, total):
            started.set()
            release.wait(30)
        t = threading.Thread(target=lambda: det.detect(images, progress=progress))
        t.start()
        assert started.wait(30)
        threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t0 = time.monotonic()
        try:
            det.detect(images, progress=False)
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted", round(time.monotonic() - t0, 1))
        release.set()
        t.join()
        """,
        images,
    )
    assert p.returncode == 0, p.stderr
    word, seconds = p.stdout.split()
    assert word == "interrupted" and float(seconds) < 5, p.stdout


def test_ctrl_c_stops_a_run(images):
    p = _run(
        """
        det = deepfaune_rs.Detector("md-lite")
        def progress(done, total):
            os.kill(os.getpid(), signal.SIGINT)
        try:
            det.detect(images * 3, progress=progress)
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted")
        """,
        images,
    )
    assert p.returncode == 0 and p.stdout.strip() == "interrupted", p.stderr
