"""Chapter 26's page: the C engine, compiled to WebAssembly, in the reader's browser.

``page_html`` returns one self-contained HTML fragment (the notebook displays it, Jupyter
Book copies it into the page): markup, ``window.BN_DEMO_DATA`` (the wasm module, each
model's trace layout and the host engine's outputs on the embedded test images, the
test images as 16x16 float32 network inputs and as 28x28 bytes, gzip + base64) and
``engine_page.js``. Nothing is fetched at view time, so the page works from file://.
"""
import base64
import gzip
import json
import math
from pathlib import Path

import numpy as np

from ..deploy import intmodel
from ..deploy.engine import EngineModel
from ..pipeline import export_run
from .derived import own_header
from ..training.data import FILES, REPO_ROOT, load_mnist, read_idx, resolve_data_root

JS = Path(__file__).with_name("engine_page.js")


def b64(data: bytes, gz: bool = False) -> str:
    return base64.b64encode(gzip.compress(data, 9, mtime=0) if gz else data).decode("ascii")


def run_header(run_dir):
    """(header, Exported): the run's own header (``derived.own_header``)."""
    _, _, exp = export_run(run_dir)
    return own_header(run_dir, exp), exp


def segments(exp) -> list:
    """The trace of bn_run_network, cut into its vectors: [{label, start, n, cols}]."""
    fcs = [l for l in exp.layers if l.kind == "fc"]
    parts = []
    if exp.layers[0].kind != "fc":
        parts.append((f"conv features, {fcs[0].n_in} values (after ShiftNorm)", fcs[0].n_in))
    for i, l in enumerate(fcs):
        what = "logits" if i == len(fcs) - 1 else "activations (ShiftNorm, ReLU)"
        parts.append((f"FC {l.n_in} -> {l.n_out} ({l.wtype}): {what}", l.n_out))
    out, start = [], 0
    for label, n in parts:
        out.append(dict(label=label, start=start, n=n, cols=math.ceil(math.sqrt(n))))
        start += n
    return out


def shown_path(p: Path) -> str:
    """A path relative to the repository where it lies inside it (as the page shows it)."""
    p = Path(p).resolve()
    return str(p.relative_to(REPO_ROOT)) if p.is_relative_to(REPO_ROOT) else str(p)


def model_entry(index: int, name: str, config: str, header: Path, exp, cycles: str,
                x16: np.ndarray) -> dict:
    """One model of the page, with the host engine's outputs on the page's test images."""
    preds, logits = EngineModel(header, exp.model_id).run(
        intmodel.input_codes(x16).astype(np.int8))
    return dict(index=index, name=name, config=config, header=shown_path(header),
                model_id=exp.model_id, model_id_hex=f"{exp.model_id:08X}", cycles=cycles,
                segments=segments(exp),
                host=dict(n_classes=exp.n_classes, preds=preds.tolist(),
                          logits=b64(logits.astype("<i4").tobytes(), gz=True)))


def test_images(n: int, data_root=None) -> tuple:
    """(page entry, (n, 256) float32 inputs) of the first ``n`` test images: the 16x16
    network inputs (exactly the training pipeline's), the 28x28 originals and labels."""
    data = load_mnist(data_root, train_subset=1)            # the test split is whole
    raw = read_idx(resolve_data_root(data_root) / "MNIST" / "raw" / FILES["test_images"], 3)
    x16 = data.test_x[:n].numpy().astype(np.float32).reshape(n, -1)
    return dict(n=n, labels=data.test_y[:n].tolist(),
                x16=b64(x16.astype("<f4").tobytes(), gz=True),
                raw28=b64(raw[:n].astype(np.uint8).tobytes(), gz=True)), x16


MARKUP = """<div id="bn-demo" class="bn-demo">
<style>
.bn-demo {font-size: 0.9em} .bn-demo .bn-row {display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start}
.bn-demo canvas {image-rendering: pixelated; border: 1px solid #999}
.bn-demo #bn-draw {width: 280px; height: 280px; cursor: crosshair; touch-action: none}
.bn-demo #bn-pred {font-size: 3em; font-weight: bold; line-height: 1}
.bn-demo figure {margin: 0 0.5em 0.5em 0; display: inline-block; vertical-align: top}
.bn-demo figcaption {font-size: 0.8em; max-width: 180px}
</style>
<p>Model: <select id="bn-model"></select> <button id="bn-clear">Clear</button>
<button id="bn-random">Random MNIST test image</button></p>
<p id="bn-model-info"></p>
<div class="bn-row">
<figure><canvas id="bn-draw" width="280" height="280"></canvas><figcaption>Draw a digit here
(mouse or touch); the engine runs when you lift the pen.</figcaption></figure>
<figure><canvas id="bn-input" width="160" height="160"></canvas><figcaption>The 16x16 int8
input the engine sees (-127 black .. 127 white).</figcaption></figure>
<figure><div>prediction</div><div id="bn-pred">?</div><div id="bn-source"></div></figure>
<figure><svg id="bn-logits" width="300" height="150" viewBox="0 0 300 150"></svg>
<figcaption>The ten logits (output accumulators), the largest in red.</figcaption></figure>
</div>
<p id="bn-logit-text"></p>
<div id="bn-layers"></div>
<p id="bn-check">Starting the engine ...</p>
</div>
"""


def page_html(wasm_bytes: bytes, models: list, images: dict) -> str:
    """The page fragment: markup, the data, the script (in that order)."""
    data = dict(wasm=b64(wasm_bytes), models=models, images=images)
    return (MARKUP + "<script>window.BN_DEMO_DATA = " + json.dumps(data, separators=(",", ":"))
            + ";</script>\n<script>\n" + JS.read_text() + "</script>\n")
