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
# # Self-compression: learned bit depths
#
# ## Overview
#
# Every model so far has a weight type chosen before training, for the whole network
# (chapter 4) or per layer (chapter 22). Self-compression {cite}`csefalvay2023selfcompressing`
# lets training choose: each layer, or each output channel, has a bit depth `b` and an
# exponent `e` that are learned by gradient like the weights. Its weights are the
# `round(b)`-bit signed integers times `2^e`,
#
# $$q = 2^e \cdot \mathrm{round}\big(\mathrm{clip}(w / 2^e,\; -2^{B-1},\; 2^{B-1} - 1)\big),
# \qquad B = \mathrm{round}(\max(b, 0)),$$
#
# with straight-through gradients for both roundings, and the loss adds
# `gamma * (total bits / total weights)`, so the bit depths fall until clipping the
# weights costs more accuracy than the bits save. A channel whose bit depth reaches 0
# is all zeros: it is removed (pruning comes with the method).
#
# The research plan (shared/seeds/000, "Self-compressing models") tried it per layer,
# without a learned scale (RMSNorm makes the scale free), and reports: "Model tends to
# overweight this parameter due to strong influence on loss function, 'starves itself'
# to lower bit precision", and expects that "quantization learning probably works
# better if implemented per channel, but this is not easily implemented in inference
# code". Here both granularities are trained (`selfcomp: layer | channel`,
# `bitnetlib.training.selfcomp`) with the 64/64/64 recipe of
# `configs/fc_4bitsym_64x3_aug.yaml` at a few penalty weights `gamma`, and compared in
# accuracy and weight bytes with the fixed-type models of the same recipe (chapter 14's
# runs). The activations stay as in BitLinear (RMSNorm, 8-bit absmax). The C engine has
# no learned bit depths: `bitnet export` refuses these runs, so this is a training-side
# study; the sizes count each channel's bits times its weights (the exponents and the
# paper's discount of a removed channel's inputs in the next layer left out). The
# fixed types are counted the same way: Ternary at 1.6 bits per weight, a little less
# than the engine's packed rows, which are padded to whole words (chapter 14).

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's recipe
epochs = None          # None: profile's value (smoke 2, full 60)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
augment = None         # None: profile's value (smoke off, full on)
gammas = None          # size-penalty weights; None: profile's (smoke [0.01, 1.0], full 4)
granularities = ["layer", "channel"]   # one learned bit depth per layer, or per output row
init_bits = 8.0        # every bit depth starts here
lr_mult = None         # learning rate of b and e / lr; None: profile's (smoke 100, full 10)
types = ["Binary", "Ternary", "2bitsym", "4bitsym", "8bit"]   # the fixed-type models
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.selfcomp import engine_types, total_bytes

S, common = bk.headline_settings(globals(), smoke=dict(gammas=[0.01, 1.0], lr_mult=100.0),
                                 full=dict(gammas=[0.001, 0.01, 0.1, 1.0], lr_mult=10.0))
BASE = "configs/fc_4bitsym_64x3_aug.yaml"
common["widths"] = [64, 64, 64]
fixed_cfgs = {q: bk.resolve_config({**common, "quant": q}, BASE) for q in types}
grid = [{"selfcomp": g, "selfcomp_gamma": gamma, "selfcomp_bits": float(init_bits),
         "selfcomp_lr_mult": float(S.lr_mult)} for g in granularities for gamma in S.gammas]
bk.require([*fixed_cfgs.values(), *(bk.resolve_config({**common, **o}, BASE) for o in grid)])

# %% [markdown]
# ## Training
#
# The fixed-type models are chapter 14's (the same configurations, so at `full` they
# are read from the results store); the self-compressing ones differ from them only in
# the `selfcomp` keys (their `quant` is unused: every linear layer learns its bits).

# %%
fixed = bk.sweep([{"quant": q} for q in types], base=BASE, common=common, desc="fixed types")
learned = bk.sweep(grid, base=BASE, common=common, desc="self-compression")
display(Markdown(bk.profile_note(S)))
rows = [dict(model=r.cfg.quant, bytes=round(total_bytes(r.last["layers"])),
             mean_bits=bk.total_bits(r.metrics) / bk.n_weights(r.metrics),
             zero_channels="", test_acc=r.last["test_acc"]) for r in fixed]
rows += [dict(model=f"selfcomp {r.cfg.selfcomp}, gamma {r.cfg.selfcomp_gamma:g}",
              bytes=round(total_bytes(r.last["layers"])),
              mean_bits=bk.total_bits(r.metrics) / bk.n_weights(r.metrics),
              zero_channels=f"{100 * np.mean([s['zero_channels'] for s in r.last['layers']]):.1f}%",
              test_acc=r.last["test_acc"]) for r in learned]
display(Markdown(bk.markdown_table(rows)))

# %% [markdown]
# ## Accuracy against size
#
# Each self-compressing model at the bytes its learned bit depths take after the last
# epoch, beside the fixed-type models of the same recipe.

# %% mystnb={"figure": {"caption": "Test accuracy against total weight bytes: the fixed-type 64/64/64 models (line) and the self-compressing ones, one learned bit depth per layer (squares) or per channel (triangles), labelled with their penalty weight gamma (models that collapsed to 0 bytes are left out: see below).", "name": "fig-selfcomp-size"}}
alive = [r for r in learned if total_bytes(r.last["layers"]) > 0]   # 0 bytes: collapsed
fig, ax = plt.subplots(figsize=(7.5, 4.2))
fb = [total_bytes(r.last["layers"]) for r in fixed]
ax.plot(fb, [r.last["test_acc"] for r in fixed], "k.-", label="fixed types")
for x, r in zip(fb, fixed):
    ax.annotate(r.cfg.quant, (x, r.last["test_acc"]), fontsize=7, xytext=(3, -9),
                textcoords="offset points")
for g, marker, color in zip(granularities, "s^", ("C0", "C3")):
    sel = [r for r in alive if r.cfg.selfcomp == g]
    ax.scatter([total_bytes(r.last["layers"]) for r in sel], [r.last["test_acc"] for r in sel],
               marker=marker, color=color, zorder=3, label=f"self-compression per {g}")
    for r in sel:
        ax.annotate(f"{r.cfg.selfcomp_gamma:g}", (total_bytes(r.last["layers"]), r.last["test_acc"]),
                    fontsize=7, color=color, xytext=(3, 3), textcoords="offset points")
ax.set(xscale="log", xlabel="weight bytes", ylabel="test accuracy [%]")
ax.legend(fontsize=7)
plt.show()

# %% tags=["remove-input"]
def nearest_fixed(r):
    """The fixed-type model closest in bytes (on a log scale)."""
    b = total_bytes(r.last["layers"])
    return min(fixed, key=lambda f: abs(np.log(total_bytes(f.last["layers"]) / b)))


collapsed = [r for r in learned if r not in alive]
which = ", ".join(f"per {r.cfg.selfcomp}, gamma {r.cfg.selfcomp_gamma:g}: "
                  f"{r.last['test_acc']:.2f}%" for r in collapsed)
display(Markdown(
    f"{len(collapsed)} of the {len(learned)} self-compressing models collapsed ({which}): "
    f"every layer fell to 0 bits, so the network outputs a constant and scores chance: at "
    f"that gamma the size penalty outweighs the classification loss." if collapsed else
    "No self-compressing model collapsed to 0 bits."))
smallest = min(alive, key=lambda r: total_bytes(r.last["layers"]))
near = nearest_fixed(smallest)
display(Markdown(
    f"The smallest self-compressing model that did not collapse (per {smallest.cfg.selfcomp}, gamma "
    f"{smallest.cfg.selfcomp_gamma:g}) ends at {total_bytes(smallest.last['layers']):.0f} bytes "
    f"and {smallest.last['test_acc']:.2f}% test accuracy; the fixed type closest in size, "
    f"{near.cfg.quant}, has {total_bytes(near.last['layers']):.0f} bytes and "
    f"{near.last['test_acc']:.2f}% ({smallest.last['test_acc'] - near.last['test_acc']:+.2f} "
    f"points)."))

# %% [markdown]
# ## Learned bits over the epochs
#
# The mean bit depth of every layer after each epoch (per channel: the mean over the
# layer's channels), from the initial `init_bits` at epoch 0. The plan's "starving" would show as bits that keep falling while
# the accuracy does.

# %% mystnb={"figure": {"caption": "Mean learned bits per weight of each linear layer after every epoch (epoch 0: the initial depth), one panel per granularity and penalty weight; layer 1 sees the 256 input pixels, layer 4 gives the logits.", "name": "fig-selfcomp-epochs"}}
fig, axes = plt.subplots(len(granularities), len(S.gammas), sharex=True, sharey=True,
                         figsize=(2.6 * len(S.gammas) + 1, 2.4 * len(granularities)), squeeze=False)
for r in learned:
    ax = axes[granularities.index(r.cfg.selfcomp)][S.gammas.index(r.cfg.selfcomp_gamma)]
    ep = [0] + [m["epoch"] for m in r.metrics]          # epoch 0: the initial bit depth
    for i in range(len(r.last["layers"])):
        ax.plot(ep, [r.cfg.selfcomp_bits] + [m["layers"][i]["mean_bits"] for m in r.metrics],
                marker=".", label=f"layer {i + 1}")
    ax.set_title(f"per {r.cfg.selfcomp}, gamma {r.cfg.selfcomp_gamma:g}", fontsize=8)
for ax in axes[-1]:
    ax.set_xlabel("epoch")
for ax in axes[:, 0]:
    ax.set_ylabel("mean bits")
axes[0][0].legend(fontsize=6)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Bits per channel
#
# Per channel, the learned bit depths of the last epoch, sorted within each layer; a
# channel at 0 bits is removed.

# %% mystnb={"figure": {"caption": "Learned bit depth of every output channel (sorted) of each linear layer after the last epoch, per-channel models, one panel per penalty weight.", "name": "fig-selfcomp-channels"}}
per_channel = [r for r in learned if r.cfg.selfcomp == "channel"]
fig, axes = plt.subplots(1, max(len(per_channel), 1), sharey=True,
                         figsize=(2.8 * max(len(per_channel), 1) + 1, 2.8), squeeze=False)
for ax, r in zip(axes[0], per_channel):
    for i, s in enumerate(r.last["layers"]):
        ax.step(np.linspace(0, 1, len(s["row_bits"])), sorted(s["row_bits"]), where="mid",
                label=f"layer {i + 1}")
    ax.set(title=f"gamma {r.cfg.selfcomp_gamma:g}", xlabel="channel (sorted, fraction)")
axes[0][0].set_ylabel("bits")
axes[0][0].legend(fontsize=6)
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
def zero_share(r):
    return np.mean([s["zero_channels"] for s in r.last["layers"]])


pairs = [(a, b) for a in learned for b in learned if a.cfg.selfcomp == "layer"
         and b.cfg.selfcomp == "channel" and a.cfg.selfcomp_gamma == b.cfg.selfcomp_gamma]
better = sum(b.last["test_acc"] >= a.last["test_acc"] for a, b in pairs)
smaller = sum(total_bytes(b.last["layers"]) <= total_bytes(a.last["layers"]) for a, b in pairs)
display(Markdown(
    f"At the same gamma, the per-channel model is at least as accurate as the per-layer one "
    f"in {better} of {len(pairs)} cases and at most as large in {smaller}; the per-channel "
    f"models removed {100 * max(map(zero_share, per_channel), default=0):.1f}% of their "
    f"channels at most (mean over layers)."))

# %% [markdown]
# ## From learned bits to engine types
#
# The engine runs fixed types only. A deployable reading of a learned bit allocation:
# give each layer the engine type of the fewest bits that has at least the layer's
# learned mean bits (`bitnetlib.training.selfcomp.engine_types`; Binary 1, Ternary 1.6,
# 2bitsym 2, 4bitsym 4, 8bit 8), and train that per-layer assignment (`quant_per_layer`,
# chapter 22) from scratch with the same recipe. These runs depend on the learned runs'
# results, so at `full` they are named only once those are in the store.

# %%
mapped_types = {id(r): engine_types(r.last["layers"]) for r in learned}
assignments = list(dict.fromkeys(tuple(t) for t in mapped_types.values()))
mapped_cfgs = [bk.resolve_config({**common, "quant_per_layer": list(a)}, BASE) for a in assignments]
bk.require(mapped_cfgs)
mapped = dict(zip(assignments, bk.sweep([{"quant_per_layer": list(a)} for a in assignments],
                                        base=BASE, common=common, desc="engine types")))
rows = [dict(learned=f"selfcomp {r.cfg.selfcomp}, gamma {r.cfg.selfcomp_gamma:g}",
             learned_bytes=round(total_bytes(r.last["layers"])), learned_acc=r.last["test_acc"],
             engine_types="/".join(mapped_types[id(r)]),
             engine_bytes=round(total_bytes(mapped[tuple(mapped_types[id(r)])].last["layers"])),
             engine_acc=mapped[tuple(mapped_types[id(r)])].last["test_acc"]) for r in learned]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Each self-compressing model (open marker) and the per-layer engine-type model trained from its learned bits (filled, joined by an arrow), beside the fixed-type models (line).", "name": "fig-selfcomp-engine"}}
fig, ax = plt.subplots(figsize=(7.5, 4.2))
ax.plot(fb, [r.last["test_acc"] for r in fixed], "k.-", label="fixed types")
for r in learned:
    m = mapped[tuple(mapped_types[id(r)])]
    c = "C0" if r.cfg.selfcomp == "layer" else "C3"
    a = (total_bytes(r.last["layers"]), r.last["test_acc"])
    b = (total_bytes(m.last["layers"]), m.last["test_acc"])
    ax.scatter(*a, marker="s" if r.cfg.selfcomp == "layer" else "^", facecolors="none",
               edgecolors=c, zorder=3)
    ax.scatter(*b, marker="o", color=c, zorder=3)
    ax.annotate("", b, a, arrowprops=dict(arrowstyle="->", color=c, lw=0.8))
for g, marker, c in (("layer", "s", "C0"), ("channel", "^", "C3")):
    ax.scatter([], [], marker=marker, facecolors="none", edgecolors=c,
               label=f"self-compression per {g}")
    ax.scatter([], [], marker="o", color=c, label=f"its engine types (per {g})")
ax.set(xscale="log", xlabel="weight bytes", ylabel="test accuracy [%]")
ax.legend(fontsize=7)
plt.show()

# %% tags=["remove-input"]
gain = [mapped[tuple(mapped_types[id(r)])].last["test_acc"] - r.last["test_acc"] for r in learned]
display(Markdown(
    f"Trained as engine types, the {len(learned)} learned allocations ({len(assignments)} distinct "
    f"assignments) change the test accuracy by {min(gain):+.2f} to {max(gain):+.2f} points "
    f"against the self-compressing models they come from."))

# %% [markdown]
# At `smoke` the runs are two epochs on a subset with a raised learning rate for `b` and
# `e` (so that the bits move at all in so few steps): the numbers only show that the
# method runs end to end. Whether the plan's "starving" appears is read from the `full`
# runs' curves above.
#
# ## Provenance

# %%
bk.show_provenance(S)
