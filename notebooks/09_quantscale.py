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
# # Quantization scaling (`quantscale`)
#
# ## Overview
#
# With the `prop` rule every layer's clip is $\mathrm{mean}|w| / \mathrm{quantscale}$, so
# `quantscale` sets how wide the weight distribution is relative to the quantizer's
# range: at the default 0.25 the standard deviation of `4bitsym` weights is about 2
# steps. A larger value spreads the weights over more levels and clips more outliers.
#
# The write-up scans `quantscale` for `4bitsym` and `4bit`: too small (0.125) or too
# large (0.5) hurts, 0.2 to 0.4 is flat within the seed-to-seed noise; the entropy of the
# codes grows with `quantscale` without improving accuracy, and about 3 bits of entropy
# already give the best accuracy, which hints that entropy coding could shrink the
# weights to less than 80 %.
#
# The last section asks what finer scales would buy: one clip per output channel
# instead of one per tensor, and grids shifted off zero by an integer zero point
# (asymmetric), with what the multiplication-free engine and the CH32V003 would pay
# for them.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 3, full 60)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
scales = None          # quantscale values; None: profile's list
types = None           # None: ["4bitsym", "4bit"]
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)
scale_types = None     # types for the per-channel / asymmetric scales; None: profile's
scale_seeds = None     # their seeds; None: profile's (smoke [0], full [0, 1])
mcu_images = None      # emulated test images per inference count; None: smoke 3, full 100

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.book import wscale as bw
from bitnetlib.deploy import rescalebench
from bitnetlib.training.layers import quant_layers
from bitnetlib.training.train import evaluate

S = bk.chapter(
    globals(),
    smoke=dict(epochs=3, train_subset=4000, scales=[0.125, 0.25, 0.5], types=["4bitsym", "4bit"],
               augment=False, threads=1, compile=False, scale_types=["4bitsym", "2bitsym"],
               scale_seeds=[0], mcu_images=3),
    full=dict(epochs=60, train_subset=0, scales=[0.125, 0.1875, 0.25, 0.3125, 0.375, 0.5],
              types=["4bitsym", "4bit"], augment=True, threads=0, compile=True,
              scale_types=["4bitsym", "4bit", "2bitsym"], scale_seeds=[0, 1], mcu_images=100))
common = dict(widths=[64, 64, 64], clip="prop", epochs=S.epochs, train_subset=S.train_subset,
              augment=S.augment, compile=S.compile, device=device, seed=seed)

# %% [markdown]
# ## The scan

# %%
grid = [{"quant": q, "quantscale": s} for q in S.types for s in S.scales]
runs = bk.sweep(grid, common=common, desc="quantscale scan")
display(Markdown(bk.profile_note(S)))

def std_in_steps(model):
    """Per layer: standard deviation of the float weights in units of the quantizer step."""
    return [float(l.weight.std() / l.quantizer.step(l.clip)) for l in quant_layers(model)]

rows = [dict(type=r.cfg.quant, quantscale=r.cfg.quantscale, train_loss=r.last["train_loss"],
             test_acc=r.last["test_acc"],
             std_steps=" ".join(f"{v:.2f}" for v in std_in_steps(r.model)),
             entropy=" ".join(f"{s['entropy']:.2f}" for s in r.last["layers"])) for r in runs]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Final training loss and test accuracy against quantscale.", "name": "fig-qs-scan"}}
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
for q in S.types:
    sel = [r for r in runs if r.cfg.quant == q]
    a.plot(S.scales, [r.last["train_loss"] for r in sel], "o-", label=q)
    b.plot(S.scales, [r.last["test_acc"] for r in sel], "o-", label=q)
a.set(xlabel="quantscale", ylabel="train loss")
b.set(xlabel="quantscale", ylabel="test accuracy [%]")
a.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Reading the plot: the write-up's optimum is a broad plateau between 0.2 and 0.4; ours
# is in the table above (at `smoke`, noisy and not comparable).
#
# ## Standard deviation and entropy per layer

# %% mystnb={"figure": {"caption": "Per-layer standard deviation of the weights in quantizer steps (left) and entropy of the codes (right) against quantscale, 4bitsym.", "name": "fig-qs-entropy"}}
sel = [r for r in runs if r.cfg.quant == S.types[0]]
stds = [std_in_steps(r.model) for r in sel]
ents = [[s["entropy"] for s in r.last["layers"]] for r in sel]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
for i in range(len(stds[0])):
    a.plot(S.scales, [s[i] for s in stds], "o-", label=f"layer {i + 1}")
    b.plot(S.scales, [e[i] for e in ents], "o-", label=f"layer {i + 1}")
a.set(xlabel="quantscale", ylabel="std of weights [steps]")
b.set(xlabel="quantscale", ylabel="code entropy [bits]")
a.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# With the `prop` rule the standard deviation in steps is proportional to `quantscale`
# by construction; the write-up's point is that the entropy rises with it while the
# accuracy does not, which the table above lets us check for our runs.
#
# ## First-layer weight distributions

# %% mystnb={"figure": {"caption": "Histogram of the first layer's float weights in quantizer steps for each quantscale (4bitsym); the dashed lines are the clip.", "name": "fig-qs-hist"}}
fig, axes = plt.subplots(1, len(sel), figsize=(3.3 * len(sel), 3), sharey=True)
for ax, r in zip(axes, sel):
    layer = quant_layers(r.model)[0]
    v = (layer.weight.detach() / layer.quantizer.step(layer.clip)).flatten().cpu()
    ax.hist(v.numpy(), bins=80, range=(-12, 12))
    for x in (-layer.quantizer.edge, layer.quantizer.edge):
        ax.axvline(x, ls="--", color="k", lw=0.8)
    ax.set_title(f"quantscale {r.cfg.quantscale}")
    ax.set_xlabel("weight [steps]")
fig.tight_layout()
plt.show()

# %% [markdown]
# %%
for r in sel:
    layer = quant_layers(r.model)[0]
    share = float((layer.weight.abs() > layer.clip).float().mean())
    print(f"quantscale {r.cfg.quantscale}: {100 * share:.2f}% of first-layer weights beyond the clip")

# %% [markdown]
# A larger `quantscale` widens the distribution in steps and clips more weights; QAT
# spreads the clipping error over the other weights.
#
# ## Per-channel and asymmetric weight scales
#
# Every layer so far has one clip per tensor and a grid symmetric about zero. Two finer
# choices are common elsewhere: one scale per output channel (row of the weight
# matrix), and an asymmetric grid whose integer zero point shifts it onto the weights.
# The ViT quantization report (shared/seeds/004) tried both on CIFAR-10. Its 2-bit-weight
# ViT reached 90.94 % "per channel", below its per-tensor runs with nearby settings
# (91.61 % without mixup, 92.31 % with mixup and random erasing; no run differs from it
# in the scale alone), and its asymmetric 2-bit *activation* quantizer gained 0.8
# points (93.41 against 92.61 %); the symmetric against asymmetric 2-bit *weight* runs
# it planned have no results. The source thus expects little from per-channel weight
# scales and leaves asymmetric weights open.
#
# `weight_scale: channel` gives every BitLinear one clip per output row, chosen by the
# same rule (`prop` or OCTAV) row by row; `weight_zero_point: asymmetric` centres each
# grid (per tensor, or per row with both) on the weights' mean, rounded to whole steps,
# so that a weight is (level + offset) x step (`bitnetlib.training.wscale`; the uniform
# grids Ternary, 2bitsym, 4bitsym, 4bit and 8bit). Every combination is trained at
# 64/64/64 with `quantscale` 0.25; per tensor and symmetric is, for the scan's types,
# the scan's run. None of these layers exports: the engine's types have one scale per
# tensor (the cost of the alternatives follows below).

# %%
COMBOS = [("tensor", "symmetric"), ("channel", "symmetric"), ("tensor", "asymmetric"),
          ("channel", "asymmetric")]
sgrid = [{"quant": q, "quantscale": 0.25, "weight_scale": sc, "weight_zero_point": zp,
          "seed": sd} for q in S.scale_types for sc, zp in COMBOS for sd in S.scale_seeds]
sruns = bk.sweep(sgrid, common=common, desc="weight scales")
by_combo = {(q, sc, zp): [r for r in sruns if (r.cfg.quant, r.cfg.weight_scale,
                                                r.cfg.weight_zero_point) == (q, sc, zp)]
            for q in S.scale_types for sc, zp in COMBOS}
acc = {k: float(np.mean([r.last["test_acc"] for r in rs])) for k, rs in by_combo.items()}
data = bk.cached_data(sruns[0].cfg)


def rounded_acc(rs, rule):
    """Mean test accuracy with the per-channel scales rounded as the MCU would apply them."""
    return float(np.mean([evaluate(bw.rounded_scales(r.model, rule), data.test_x,
                                   data.test_y)[1] for r in rs]))


srows = []
for (q, sc, zp), rs in by_combo.items():
    row = dict(type=q, scale=sc, zero_point=zp, seeds=len(rs), test_acc=acc[(q, sc, zp)],
               vs_tensor_symmetric=acc[(q, sc, zp)] - acc[(q, "tensor", "symmetric")],
               train_loss=float(np.mean([r.last["train_loss"] for r in rs])))
    row.update(scales_as_shifts=rounded_acc(rs, "pow2") if sc == "channel" else "-",
               scales_as_q8=rounded_acc(rs, "q8") if sc == "channel" else "-")
    srows.append(row)
display(Markdown(bk.markdown_table(srows)))

# %% [markdown]
# `scales_as_shifts` and `scales_as_q8` evaluate the per-channel models again with each
# row's step rounded, relative to the layer's largest, to a power of two (what a
# per-output shift can apply) or to 8 fraction bits (an int16 multiplier), the codes
# kept.
#
# ### What the engine and the MCU would pay
#
# The engine has one scale per tensor, folded into ShiftNorm's shared shift, and no
# zero point ({doc}`13_inference_engine`). Per-channel scales need every output's
# accumulator rescaled before that shift: by a per-output shift if the scales are
# powers of two, else by a multiplication. Asymmetric weights leave out
# offset x sum(x) from the products of the codes: one sum of the layer's inputs, then
# one multiplication per output (per-channel zero points) or per layer (per tensor).
# The CH32V003 has no multiplier. A bench firmware (`firmware/rescalebench.c`,
# `bitnetlib.deploy.rescalebench`) runs exactly these steps on every FC layer of the
# 64/64/64 network in the emulator, each result checked bit for bit against numpy,
# with the per-output shifts, multipliers and zero points of the 4bitsym runs above;
# beside it, the whole inference of the per-tensor symmetric 4bitsym network
# ({doc}`15_ch32v003_deployment`).

# %%
key = lambda sc, zp: by_combo[("4bitsym", sc, zp)][0]
bench = rescalebench.emulate(bw.bench_layers(key("channel", "symmetric").model,
                                             key("channel", "asymmetric").model))
infer = {k: bk.mcu_cached(key("tensor", "symmetric").cfg, kernel=k, images=S.mcu_images)
         ["cycles_mean"] for k in ("fast", "baseline")}
fcs = quant_layers(key("tensor", "symmetric").model)
n_out = sum(l.out_features for l in fcs)
# option: (bench variants, flash bytes of its parameters: int8 shift or zero point, int16 scale)
OPTIONS = {"per-channel, power-of-two scales": (["shift"], n_out),
           "per-channel, int16 scales (shift-add)": (["mult_sa"], 2 * n_out),
           "per-channel, int16 scales (__mulsi3)": (["mult"], 2 * n_out),
           "per-tensor asymmetric": (["zero_t"], len(fcs)),
           "per-channel asymmetric (shift-add)": (["zero_ch_sa"], n_out),
           "per-channel asymmetric (__mulsi3)": (["zero_ch"], n_out),
           "per-channel power-of-two + asymmetric": (["shift", "zero_ch_sa"], 2 * n_out)}
crows = []
for name, (variants, flash) in OPTIONS.items():
    cyc = sum(r["cycles"] for r in bench if r["variant"] in variants)
    crows.append({"option": name, "extra cycles": cyc,
                  "% of fast inference": 100 * cyc / infer["fast"],
                  "% of baseline inference": 100 * cyc / infer["baseline"],
                  "extra flash bytes": flash})
display(Markdown(bk.markdown_table(crows)))
print(f"inference of the per-tensor symmetric 4bitsym network: {infer['fast']:,.0f} cycles "
      f"(fast kernels), {infer['baseline']:,.0f} (baseline)")

# %% mystnb={"figure": {"caption": "Left: test accuracy of each combination of scale granularity and zero point per weight type (mean over seeds). Right: extra cycles per inference of each way to apply them on the CH32V003, emulated, as a share of the fast kernels' whole inference.", "name": "fig-qs-wscale"}}
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
width = 0.8 / len(COMBOS)
for i, (sc, zp) in enumerate(COMBOS):
    a.bar(np.arange(len(S.scale_types)) + i * width,
          [acc[(q, sc, zp)] for q in S.scale_types], width, label=f"{sc}, {zp}")
a.set_xticks(np.arange(len(S.scale_types)) + 0.4 - width / 2, S.scale_types)
lo = min(acc.values())
a.set(ylabel="test accuracy [%]", ylim=(lo - 0.5, max(acc.values()) + 0.3))
a.legend(fontsize=8)
b.barh([r["option"] for r in crows], [r["% of fast inference"] for r in crows])
b.invert_yaxis()
b.set(xlabel="extra cycles [% of the fast inference]")
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
gain = {k: v - acc[(k[0], "tensor", "symmetric")] for k, v in acc.items() if k[1:] != ("tensor", "symmetric")}
best = max(gain, key=gain.get)
display(Markdown(
    f"The largest gain over per-tensor symmetric scales is {gain[best]:+.2f} points "
    f"({best[0]}, {best[1]}, {best[2]}), the largest loss {min(gain.values()):+.2f}; "
    f"applying per-channel scales as shifts costs "
    f"{crows[0]['% of fast inference']:.1f} % of the fast inference, as int16 multipliers "
    f"{crows[1]['% of fast inference']:.1f} %, and per-channel zero points "
    f"{crows[4]['% of fast inference']:.1f} % (profile `{S.profile}`; at `smoke` the "
    f"accuracy differences are within a seed's noise)."))

# %% [markdown]
# The bench runs each step as its own pass over the accumulators in SRAM; fused into
# ShiftNorm's pass, which loads every accumulator anyway, part of the load and store
# would go, so the shares are upper bounds for these implementations. `__mulsi3` loops
# over the bits of one operand (here the accumulator or the input sum), the shift-add
# loops over the multiplier's (at most 9 bits for Q8 scales, 3 for these zero points).
#
# ## Provenance

# %%
bk.show_provenance(S)
