"""Chapter 26's page (_build/html/notebooks/26_engine_in_browser.html) in headless Chromium:
the engine compiled to WebAssembly, run through the page's own input path
(``window.bnDemo.runImage``), must give the host C engine's prediction and all ten
logits on every embedded MNIST test image (at least 1,000) for every model the page
offers; the embedded images must be exactly the training pipeline's, the page's 28->16
resize must be the training's; a stroke drawn with mouse events must give a prediction
that the host engine gives too for the same pixels.

Skipped like tests/test_book_html.py when the page or chromium is missing, unless
BOOK_CHECK_REQUIRED=1.
"""
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from bitnetlib.deploy import intmodel
from bitnetlib.deploy.engine import EngineModel
from bitnetlib.training.data import load_mnist
from test_book_html import HTML, ROOT, Browser, _skip_or_fail

PAGE = HTML / "notebooks" / "26_engine_in_browser.html"
MIN_IMAGES = 1000
CHUNK = 100


def open_page(browser, url):
    browser.call("Page.navigate", url=url)
    for _ in range(300):
        time.sleep(0.1)
        if browser.evaluate("document.readyState") == "complete":
            break
    res = browser.call("Runtime.evaluate", expression="window.bnDemo.ready.then(JSON.stringify)",
                       awaitPromise=True, returnByValue=True)
    assert "exceptionDetails" not in res, res.get("exceptionDetails")
    return json.loads(res["result"]["value"])


def page_run(browser, m, x) -> tuple:
    """(preds, logits) of the page's runImage on float32 images x (N, 256)."""
    preds, logits = [], []
    for i in range(0, len(x), CHUNK):
        expr = (f"JSON.stringify({json.dumps(x[i:i + CHUNK].tolist())}.map(p => "
                f"{{ const r = bnDemo.runImage({m}, p); return [r.pred, r.logits]; }}))")
        for pred, lg in json.loads(browser.evaluate(expr)):
            preds.append(pred)
            logits.append(lg)
    return np.array(preds), np.array(logits)


def host_model(entry) -> EngineModel:
    header = Path(entry["header"])
    header = header if header.is_absolute() else ROOT / header
    if not header.exists():
        pytest.fail(f"{PAGE.name}: model {entry['name']} was built from {header}, which this "
                    f"checkout lacks: rebuild the page (make book-run CHAPTERS=26_engine_in_browser)")
    return EngineModel(header, entry["model_id"])


def draw_stroke(browser, points):
    """Mouse events at canvas fractions ``points`` (the browser makes pointer events)."""
    box = json.loads(browser.evaluate("(() => { const c = document.getElementById('bn-draw'); "
                                      "c.scrollIntoView({block: 'center'}); const r = c.getBoundingClientRect(); "
                                      "return JSON.stringify([r.left, r.top, r.width, r.height]); })()"))
    xy = [(box[0] + fx * box[2], box[1] + fy * box[3]) for fx, fy in points]
    browser.call("Input.dispatchMouseEvent", type="mousePressed", x=xy[0][0], y=xy[0][1],
                 button="left", buttons=1, clickCount=1)
    for x, y in xy[1:]:
        browser.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, button="left", buttons=1)
    browser.call("Input.dispatchMouseEvent", type="mouseReleased", x=xy[-1][0], y=xy[-1][1],
                 button="left", buttons=0, clickCount=1)


@pytest.fixture(scope="module")
def page():
    if not PAGE.exists():
        _skip_or_fail(f"{PAGE} does not exist: build the book first (make book)")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        _skip_or_fail("chromium not found (apt-get install -y chromium, or make check-book)")
    browser = Browser(exe)
    try:
        checks = open_page(browser, PAGE.as_uri())
        models = json.loads(browser.evaluate(
            "JSON.stringify(BN_DEMO_DATA.models.map(M => ({name: M.name, header: M.header, "
            "model_id: M.model_id})))"))
        yield browser, checks, models
    finally:
        browser.close()


@pytest.fixture(scope="module")
def mnist_test():
    data = load_mnist(train_subset=1)
    return data.test_x.numpy().reshape(-1, 256).astype(np.float32), data


def test_page_equals_host_engine_on_test_images(page, mnist_test):
    browser, checks, models = page
    x_all, _ = mnist_test
    n = browser.evaluate("BN_DEMO_DATA.images.n")
    assert n >= MIN_IMAGES and len(models) >= 2
    embedded = np.array(json.loads(browser.evaluate(
        f"JSON.stringify(Array.from({{length: {n}}}, (_, i) => Array.from(bnDemo.testImage(i).pixels)))")),
        dtype=np.float32)
    assert np.array_equal(embedded, x_all[:n])            # the training pipeline's inputs
    codes = intmodel.input_codes(x_all[:n]).astype(np.int8)
    for m, entry in enumerate(models):
        preds, logits = host_model(entry).run(codes)
        got_preds, got_logits = page_run(browser, m, x_all[:n])
        assert int((got_preds != preds).sum()) == 0, entry["name"]
        assert int((got_logits != logits).any(axis=1).sum()) == 0, entry["name"]
    assert all(c["differences"] == 0 and c["images"] == n for c in checks), checks


def test_page_resize_is_the_training_resize(page, mnist_test):
    browser, _, _ = page
    x_all, _ = mnist_test
    n = 200
    got = np.array(json.loads(browser.evaluate(
        f"JSON.stringify(Array.from({{length: {n}}}, (_, i) => "
        f"Array.from(bnDemo.resize16(Array.from(bnDemo.testImage(i).raw28, v => v / 255)))))")))
    assert np.abs(got - x_all[:n]).max() < 1e-5


def test_drawn_stroke_gives_the_host_prediction(page):
    browser, _, models = page
    browser.evaluate("document.getElementById('bn-clear').click()")
    draw_stroke(browser, [(0.45, 0.15 + 0.07 * k) for k in range(11)] + [(0.5, 0.85)])
    for m, entry in enumerate(models):
        browser.evaluate(f"(() => {{ const s = document.getElementById('bn-model'); s.value = '{m}'; "
                         f"s.dispatchEvent(new Event('change')); }})()")
        cur = json.loads(browser.evaluate(
            "JSON.stringify({source: bnDemo.current.source, pred: bnDemo.current.pred, "
            "logits: bnDemo.current.logits, pixels: Array.from(bnDemo.current.pixels), "
            "shown: document.getElementById('bn-pred').textContent})"))
        assert cur["source"] == "your drawing" and 0 <= cur["pred"] <= 9
        assert cur["shown"] == str(cur["pred"])
        x = np.array(cur["pixels"], dtype=np.float32)[None]
        assert x.max() > x.min()                          # the stroke reached the input
        preds, logits = host_model(entry).run(intmodel.input_codes(x).astype(np.int8))
        assert preds[0] == cur["pred"] and logits[0].tolist() == cur["logits"]
