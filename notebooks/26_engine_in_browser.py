# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---


# %% [markdown]
# # The engine in your browser
#
# ## Overview
#
# The chapters before this one run the C engine on the host (through cppyy) and in an
# emulated CH32V003. This page runs it a third way: in the reader's browser. The same C
# sources (`c_engine/bn_kernels.c`, `bn_kernels_fast.c`, `bn_network.c`, unmodified) and
# the same generated model headers that the firmware compiles (`bitnet_model.h`, written
# by `bitnet export`) are compiled with clang to WebAssembly
# (`bitnetlib.deploy.wasm`), and the module is embedded in this page. Draw a digit
# below, or load a test image, and the page runs exactly the integer computation the
# microcontroller runs: the same int8 input, the same accumulators, the same logits.
#
# What happens to a drawn digit, step by step (`bitnetlib/book/engine_page.js`):
#
# 1. **MNIST's own recipe.** The stroke's bounding box is scaled, keeping its aspect
#    ratio, into a 20x20 box (area averaging), and placed in a 28x28 frame so that its
#    centre of mass sits at the centre (whole-pixel shift, kept inside the frame). This
#    is how the MNIST digits were made from the NIST scans.
# 2. **The training data's preprocessing** (`bitnetlib.training.data`): 28x28 to 16x16
#    with the antialiased bilinear filter of `torch.nn.functional.interpolate` (and
#    PIL), then normalisation with mean 0.1307 and standard deviation 0.3081.
# 3. **The engine's input quantization, in C.** The 256 floats go into the wasm module,
#    which quantizes them per image by absmax with the float32 arithmetic of the host's
#    `intmodel.input_codes` (`c_engine/wasm/bn_wasm.c`), then calls `bn_run_network`
#    with a trace: every FC layer's accumulators (and a CNN's conv features).
#
# A test image skips steps 1 and 2: the page holds the first test images as the
# training pipeline computed them (16x16 float32), so their results must equal the host
# engine's bit for bit. The page checks that when it loads, and so does
# `tests/test_engine_page.py`, in headless Chromium.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 2, full 60)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)
mcu_images = None      # test images per emulated CH32V003 run; None: profile's (smoke 3, full 100)
page_images = None     # MNIST test images embedded in the page; None: profile's (1000)

# %% tags=["hide-input", "hide-output"]
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, Markdown, display

from bitnetlib import book as bk
from bitnetlib.book import engine_page
from bitnetlib.deploy import intmodel, wasm
from bitnetlib.deploy.engine import EngineModel

S, common = bk.headline_settings(globals(), smoke=dict(mcu_images=3, page_images=1000),
                                 full=dict(mcu_images=100, page_images=1000))
MODELS = ["FC 4bitsym 64/64/64", "CNN 64"]     # names in bk.HEADLINE_MODELS


def emulated_cycles(cfg):
    """Mean cycles per image of the fast firmware in the emulated CH32V003 (chapter 15),
    or why there is no number."""
    r = bk.emulated(cfg, kernel="fast", images=S.mcu_images)
    if "why" in r:
        return f"not measured ({r['why'][:100]})"
    fits = ("fits its 16 KB flash and 2 KB SRAM" if r["fits_ch32v003"] else
            "does not fit its 16 KB flash and 2 KB SRAM: measured on a larger virtual chip")
    return (f"{r['cycles_mean']:,.0f} cycles per image = {r['ms_at_48mhz']:.2f} ms at 48 MHz "
            f"(emulated, mean of {r['timed_images']} test images; {fits})")


# %% [markdown]
# ## The models
#
# The headline FC model (`configs/fc_4bitsym_64x3_aug.yaml`) and the best CNN
# (`configs/cnn64.yaml`; at `smoke` the 16-channel `configs/cnn16.yaml`, as in the
# headline table), read from the results store at `full` and trained small at `smoke`.
# Each is exported to its header, run on the host engine for the reference outputs, and
# run in the emulated CH32V003 for its cycle count.

# %% tags=["hide-input"]
paths = {name: bk.HEADLINE_MODELS[name][0 if S.profile == "full" else 1] for name in MODELS}
shown = {name: name if path == bk.HEADLINE_MODELS[name][0] else f"{name} (here {Path(path).stem})"
         for name, path in paths.items()}
cfgs = {name: bk.resolve_config(common, path) for name, path in paths.items()}
bk.require(cfgs.values())
runs = {}
for name, cfg in cfgs.items():
    bk.run_cached(cfg)
    header, exp = engine_page.run_header(bk.run_dir_of(cfg))
    runs[name] = dict(cfg=cfg, header=header, exp=exp, verify=bk.verify_cached(cfg),
                      cycles=emulated_cycles(cfg))
display(Markdown(bk.profile_note(S)))
display(Markdown(bk.markdown_table([
    {"model": shown[name], "weight bytes": f"{r['exp'].weight_bytes:,}",
     "C accuracy % (10,000)": f"{r['verify']['acc_c']:.2f}", "on the CH32V003": r["cycles"]}
    for name, r in runs.items()])))
display(Markdown("\n".join(
    f"- {shown[name]}: `{paths[name]}`, header `{engine_page.shown_path(r['header'])}` "
    f"(model_id 0x{r['exp'].model_id:08X})" for name, r in runs.items())))

# %% [markdown]
# ## The WebAssembly module
#
# One module holds the engine and both models; it imports nothing (no libc, no
# allocation: the engine's rules) and exports the entry points of `bn_wasm.c`.

# %% tags=["hide-input"]
module = wasm.build_module([r["header"] for r in runs.values()])
wasm_bytes = module.read_bytes()
print(f"{module.name}: {len(wasm_bytes):,} bytes "
      f"(weights {sum(r['exp'].weight_bytes for r in runs.values()):,} bytes of it)")
print("clang flags:", " ".join(wasm.WASM_CFLAGS))
print("exports:", ", ".join(wasm.WASM_EXPORTS))

# %% [markdown]
# ## Draw a digit
#
# Draw in the black square (or press *Random MNIST test image*) and switch the model
# with the menu. Under the picture: the int8 input, the prediction, the ten logits and,
# for every layer, its int8 activations after ShiftNorm and ReLU as the next layer
# reads them (white 127, black 0). The last line reports the page's own check: every
# embedded test image through every model, compared with the host engine.

# %% tags=["hide-input"]
images, x16 = engine_page.test_images(S.page_images, cfgs[MODELS[0]].data_root or None)
models = [engine_page.model_entry(i, shown[name], paths[name], r["header"], r["exp"],
                                  r["cycles"], x16) for i, (name, r) in enumerate(runs.items())]
display(HTML(engine_page.page_html(wasm_bytes, models, images)))

# %% [markdown]
# The page is the engine that runs on the CH32V003, bit for bit: the browser computes
# the logits the microcontroller would, in microseconds instead of the cycles given in
# the table above (where a model does not fit the chip's 2 KB of SRAM, the table says
# so; the computation is the same on a chip with more).
#
# ## The reference the browser reproduces
#
# The host engine's outputs for the first test images; the page's self-check compares
# all of its embedded images with these.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The first four test images as the engine sees them (int8, 16x16) and the host C engine's logits for each model: the values the page computes in the browser.", "name": "fig-engine-reference"}}
codes = intmodel.input_codes(x16[:4]).astype(np.int8)
host = {shown[name]: EngineModel(r["header"], r["exp"].model_id).run(codes)
        for name, r in runs.items()}
fig, axes = plt.subplots(2, 4, figsize=(9, 4.4), gridspec_kw=dict(height_ratios=[1, 0.8]))
for i in range(4):
    preds = ", ".join(str(p[i]) for p, _ in host.values())
    axes[0, i].imshow(codes[i].reshape(16, 16), cmap="gray", vmin=-127, vmax=127)
    axes[0, i].set_title(f"test image {i}: label {images['labels'][i]}\npredicted {preds}", fontsize=8)
    axes[0, i].axis("off")
    for k, (name, (_, logits)) in enumerate(host.items()):
        axes[1, i].bar(np.arange(10) + 0.4 * (k - 0.5), logits[i], width=0.4, label=name)
    axes[1, i].set_xticks(range(10))
    axes[1, i].tick_params(labelsize=7)
axes[1, 0].set_ylabel("logit")
fig.legend(*axes[1, 0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8)
fig.subplots_adjust(bottom=0.16)
plt.show()

# %% [markdown]
# The predictions in the titles are the two models' in the legend's order; the logits'
# scales differ between the models because each layer's ShiftNorm picks its own power
# of two, so only their order within a model matters.
#
# ## Provenance

# %% tags=["hide-input"]
bk.show_provenance(S)
