"""The engine compiled to WebAssembly (bitnetlib/deploy/wasm.py) against the host engine:
two tiny exported models (FC and CNN, random weights) built into one module, run in
headless Chromium on random images and on rounding ties; input codes, predictions,
logits and every traced accumulator must equal the host's. Skipped without clang /
wasm-ld (make wasm-toolchain) or chromium."""
import base64
import json
import shutil

import numpy as np
import pytest

from bitnetlib.deploy import intmodel, wasm
from bitnetlib.deploy.engine import EngineModel
from bitnetlib.deploy.model import Exported, LayerSpec, write_header
from bitnetlib.wtypes import TYPES

# in the page's terms: instantiate, then run every image through model m
RUN_ALL = """(async () => {
  const {instance} = await WebAssembly.instantiate(Uint8Array.from(atob('%s'), c => c.charCodeAt(0)), {});
  const E = instance.exports, m = %d, images = %s, out = [];
  const view = (T, p, n) => new T(E.memory.buffer, p, n);
  for (const x of images) {
    const n = E.bn_wasm_info(m, 1);
    view(Float32Array, E.bn_wasm_input(), n).set(x);
    const pred = E.bn_wasm_run(m);
    out.push({pred, codes: Array.from(view(Int8Array, E.bn_wasm_codes(), n)),
              logits: Array.from(view(Int32Array, E.bn_wasm_logits(), E.bn_wasm_info(m, 2))),
              trace: Array.from(view(Int32Array, E.bn_wasm_trace(), E.bn_wasm_info(m, 3)))});
  }
  return {n_models: E.bn_wasm_n_models(), id: E.bn_wasm_info(m, 0) >>> 0,
          bad_model: E.bn_wasm_run(7), out};
})()"""


def fields(wtype, shape, rng):
    return rng.choice(np.array(TYPES[wtype].fields), size=shape)


def tiny_models(rng):
    fc = [LayerSpec("0", "fc", "4bitsym", 256, 24, fields("4bitsym", (24, 256), rng)),
          LayerSpec("1", "fc", "Ternary", 24, 16, fields("Ternary", (16, 24), rng)),
          LayerSpec("2", "fc", "8bit", 16, 10, fields("8bit", (10, 16), rng))]
    cnn = [LayerSpec("0", "conv", "8bit", 16, 4, rng.integers(-128, 128, (4, 9)), shift=6, pool=1),
           LayerSpec("1", "fc", "2bitsym", 4 * 7 * 7, 12, fields("2bitsym", (12, 196), rng)),
           LayerSpec("2", "fc", "4bitsym", 12, 10, fields("4bitsym", (10, 12), rng))]
    out = []
    for layers in (fc, cnn):
        exp = Exported(layers, 256, 10)
        exp.model_id = exp.fingerprint()
        out.append(exp)
    return out


def probe_inputs(rng) -> np.ndarray:
    """Random images, a sparse one, and rounding ties: max 127 makes scale 1 (or just
    below), so pixels k + 0.5 land on or next to a half (ties go to even, like np.round)."""
    x = rng.normal(size=(40, 256)).astype(np.float32)
    x[1, 10:] = 0
    ties = np.resize(np.arange(-20, 20, dtype=np.float32) + 0.5, 256)
    ties[0] = 127
    return np.vstack([x, ties[None], -ties[None]]).astype(np.float32)


def browser_or_skip():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not found (apt-get install -y chromium)")
    from test_book_html import Browser
    return Browser(exe)


@pytest.mark.skipif(not wasm.have_toolchain(), reason="clang / wasm-ld missing: make wasm-toolchain")
def test_wasm_module_equals_host_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("BITNET_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(3)
    exps = tiny_models(rng)
    headers = [write_header(e, tmp_path / f"m{i}.h") for i, e in enumerate(exps)]
    module = wasm.build_module(headers)
    assert wasm.build_module(headers) == module                       # cached
    x = probe_inputs(rng)
    codes = intmodel.input_codes(x).astype(np.int8)
    b64 = base64.b64encode(module.read_bytes()).decode()
    browser = browser_or_skip()
    try:
        got = [browser.call("Runtime.evaluate", expression=RUN_ALL % (b64, m, json.dumps(x.tolist())),
                            awaitPromise=True, returnByValue=True)["result"]["value"]
               for m in range(len(exps))]
    finally:
        browser.close()
    for exp, header, g in zip(exps, headers, got):
        host = EngineModel(header, exp.model_id)
        preds, logits = host.run(codes)
        assert g["n_models"] == 2 and g["id"] == exp.model_id and g["bad_model"] == -101
        assert np.array_equal([o["codes"] for o in g["out"]], codes)
        assert np.array_equal([o["pred"] for o in g["out"]], preds)
        assert np.array_equal([o["logits"] for o in g["out"]], logits)
        assert np.array_equal([o["trace"] for o in g["out"]], [host.trace(c) for c in codes])


def test_wasm_errors_name_what_is_missing(tmp_path, monkeypatch):
    with pytest.raises(wasm.WasmError, match="nope.h not found: run `bitnet export`"):
        wasm.build_module([tmp_path / "nope.h"])
    with pytest.raises(wasm.WasmError, match="no model headers"):
        wasm.build_module([])
    exp = tiny_models(np.random.default_rng(0))[0]
    header = write_header(exp, tmp_path / "m.h")
    with pytest.raises(wasm.WasmError, match="share a model_id"):
        wasm.models_header([header, header])
    monkeypatch.setattr(wasm.shutil, "which", lambda tool: None)
    with pytest.raises(wasm.WasmError, match="install the Debian packages clang lld"):
        wasm.build_module([header])
