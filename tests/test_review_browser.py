"""The review page in a real browser (headless Chromium driven by Selenium), as a person uses
it: load, filter, relabel a sequence with the keyboard, reload, export the corrected CSV, and a
screenshot whose pixels show the boxes drawn on a thumbnail."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import deepfaune_rs
from conftest import REPO
from deepfaune_rs.review import BOX_COLOURS, ReviewServer, ReviewState, journal_path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (test extra)"
)
if CHROMIUM is None or DRIVER is None:
    pytest.skip(
        "Chromium and its driver are needed (Debian: apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def result(shared_models, testdata):
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    # Longer sequences than the folder's one image each: several thumbnails a row.
    return pipe.run(testdata / "buow", progress=False, keep_embeddings=False).redecide(maxlag_s=1e6)


@pytest.fixture()
def server(result, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAUNE_RS_CACHE", str(tmp_path / "cache"))
    srv = ReviewServer(ReviewState(result, journal_path(tmp_path / "r.csv"))).start()
    yield srv
    srv.stop()


@pytest.fixture()
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(a)
    opts.add_argument("--window-size=1400,1000")
    drv = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)
    drv.implicitly_wait(0)
    yield drv
    drv.quit()


def wait(drv, cond, timeout=30):
    return WebDriverWait(drv, timeout).until(lambda d: cond(d))


def sequences(drv) -> list[tuple[int, str]]:
    """The listed sequences and their predictions, read in one go (the list is re-rendered as
    answers arrive: element handles would go stale)."""
    rows = drv.execute_script(
        "return [...document.querySelectorAll('.seq')]"
        ".map(e => [Number(e.dataset.seq), e.querySelector('.pred').textContent])"
    )
    return [(int(a), str(b)) for a, b in rows]


def selected(drv) -> str | None:
    return drv.execute_script(
        "const e = document.querySelector('.seq.sel'); return e && e.dataset.seq"
    )


def test_review_page_load_filter_relabel_reload_export(server, browser, result, tmp_path):
    drv = browser
    drv.get(server.url)
    wait(drv, lambda d: d.find_elements(By.CSS_SELECTOR, ".seq"))
    shown = sequences(drv)
    seqnum = np.asarray(result.seqnum)
    assert [s for s, _ in shown] == sorted(set(seqnum.tolist()))
    # Filter by class: only sequences of that prediction remain.
    common = max(set(result.prediction), key=list(result.prediction).count)
    drv.execute_script(
        "const s=document.getElementById('f-class');s.value=arguments[0];"
        "s.dispatchEvent(new Event('change'))",
        common,
    )
    want = sorted({int(seqnum[i]) for i, p in enumerate(result.prediction) if p == common})
    wait(drv, lambda d: [s for s, _ in sequences(d)] == want)
    assert {p for _, p in sequences(drv)} == {common}
    drv.execute_script(
        "const s=document.getElementById('f-class');s.value='';s.dispatchEvent(new Event('change'))"
    )
    wait(drv, lambda d: len(sequences(d)) == len(shown))
    # Relabel a whole sequence with the keyboard: j to reach it, s, the label, Enter.
    target = next(
        s
        for s in sorted(set(seqnum.tolist()))
        if (seqnum == s).sum() > 1
        and result.prediction[int(np.flatnonzero(seqnum == s)[0])] != "wolf"
    )
    body = drv.find_element(By.TAG_NAME, "body")
    for _ in range([s for s, _ in shown].index(target)):
        body.send_keys("j")
    wait(drv, lambda d: selected(d) == str(target))
    body.send_keys("s")
    box = drv.find_element(By.ID, "rl-input")
    wait(drv, lambda d: box.is_displayed())
    box.send_keys("wolf", Keys.ENTER)
    wait(drv, lambda d: "-> wolf" in d.find_element(By.ID, "msg").text)
    # Reload: the change persists (it is in the journal, not in the page).
    drv.refresh()
    wait(drv, lambda d: d.find_elements(By.CSS_SELECTOR, ".seq"))
    assert dict(sequences(drv))[target] == "wolf"
    journal = [json.loads(x) for x in Path(server.state.journal).read_text().splitlines()]
    members = [result.paths[i] for i in np.flatnonzero(seqnum == target)]
    assert [(j["files"], j["label"], j["scope"]) for j in journal] == [
        (members, "wolf", "sequence")
    ]
    # Export the corrected CSV through the page's link: its rows follow the journal.
    href = drv.find_element(By.ID, "export").get_attribute("href")
    with urllib.request.urlopen(href, timeout=30) as r:
        rows = list(csv.DictReader(io.StringIO(r.read().decode("utf-8"))))
    by_file = {r["filename"]: r for r in rows}
    for p in members:
        assert (by_file[p]["prediction"], by_file[p]["score"], by_file[p]["top1"]) == (
            "wolf",
            "1.0",
            "wolf",
        )
    for i, p in enumerate(result.paths):
        if p not in members:
            assert by_file[p]["prediction"] == result.prediction[i]


def test_screenshot_shows_boxes_on_a_thumbnail(server, browser, result, tmp_path):
    from PIL import Image

    drv = browser
    drv.get(server.url)
    wait(drv, lambda d: d.find_elements(By.CSS_SELECTOR, ".thumb"))
    boxed = [i for i in range(len(result)) if i in set(result.detections.image_index.tolist())]
    assert boxed, "the test folder needs images with boxes"
    thumb = drv.find_element(By.CSS_SELECTOR, f'.thumb[data-id="{boxed[0]}"]')
    drv.execute_script("arguments[0].scrollIntoView()", thumb)
    img = thumb.find_element(By.TAG_NAME, "img")
    wait(
        drv,
        lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", img
        ),
    )
    png = thumb.screenshot_as_png
    out = Path(os.environ.get("DEEPFAUNE_REVIEW_SCREENSHOT", tmp_path / "thumb.png"))
    out.write_bytes(png)
    drv.save_screenshot(str(out.with_name(out.stem + "_page.png")))
    pix = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    # The box colour of each drawn category is there, in a frame's worth of pixels.
    cats = {
        int(c)
        for c, k in zip(result.detections.classes, result.detections.image_index)
        if k == boxed[0]
    }
    for c in cats:
        rgb = np.array([int(BOX_COLOURS[c][k : k + 2], 16) for k in (1, 3, 5)])
        close = (np.abs(pix - rgb).sum(axis=2) < 40).sum()
        assert close > 100, (c, close)
    # And the photo itself is under it (not a blank tile).
    assert pix.std() > 20
