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
# # Fewer activation bits and learned step sizes
#
# ## Overview
#
# Every chapter so far quantizes the weights to a few bits but keeps the activations at
# 8 bits, each row scaled by its own absmax after RMSNorm (what the inference engine
# does). The quantization report shared/seeds/004 trains with LSQ activation
# quantization down to 2 bits and finds that "activation quantization/ternarization is
# more challenging compared to weight quantization/ternarization". LSQ
# {cite}`esser2020lsq` learns one step size per layer by gradient descent instead of
# taking it from each row's maximum.
#
# The config keys `act_bits` (2 to 8) and `act_quant` (`absmax` or `lsq`) set the
# activation quantizer of every BitLinear (`bitnetlib.training.lsq`: the paper's gradient scale
# and initial step; the levels are the same signed -Q..Q for both, Q = 2^(bits-1) - 1).
# This is a training-side study: the C engine and the export implement 8-bit absmax
# only, so these models are not exported. The weights are 4bitsym throughout.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about 30 s on a CPU; "full": the write-up's training recipe
epochs = None          # None: profile's value (smoke 3, full 60)
act_bits_list = None   # activation bit widths; None: profile's (smoke [8, 4, 3, 2], full [8, 6, 4, 3, 2])
widths = None          # hidden widths; None: profile's (smoke [32, 32], full [64, 64, 64])
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
quant = "4bitsym"      # the weight type
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.probes import activation_steps

S = bk.chapter(
    globals(),
    smoke=dict(epochs=3, act_bits_list=[8, 4, 3, 2], widths=[32, 32], train_subset=4000,
               augment=False, threads=1, compile=False),
    full=dict(epochs=60, act_bits_list=[8, 6, 4, 3, 2], widths=[64, 64, 64], train_subset=0,
              augment=True, threads=0, compile=True))
BASE = "configs/fc_4bitsym_64x3_aug.yaml"
METHODS = ("absmax", "lsq")
common = dict(quant=quant, widths=S.widths, epochs=S.epochs, train_subset=S.train_subset,
              augment=S.augment, compile=S.compile, device=device, seed=seed)

# %% [markdown]
# ## Accuracy against activation bits
#
# One model per activation bit width and scale method, trained from scratch with the
# same recipe (the 8-bit absmax model is the usual one).

# %%
grid = [{"act_bits": b, "act_quant": m} for m in METHODS for b in S.act_bits_list]
runs = {(r.cfg.act_quant, r.cfg.act_bits): r
        for r in bk.sweep(grid, base=BASE, common=common, desc="activation quantizers")}
display(Markdown(bk.profile_note(S)))
rows = [dict(act_bits=b, **{f"{m} test_acc": runs[m, b].last["test_acc"] for m in METHODS})
        for b in S.act_bits_list]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Test accuracy against the bits of every linear layer's input activations, with per-row absmax scales and with learned LSQ step sizes; weights 4bitsym.", "name": "fig-act-bits"}}
fig, ax = plt.subplots(figsize=(7, 4))
for i, m in enumerate(METHODS):
    ax.plot(S.act_bits_list, [runs[m, b].last["test_acc"] for b in S.act_bits_list], "o-",
            color=f"C{i}", label=m)
ax.set(xlabel="activation bits", ylabel="test accuracy [%]")
ax.set_xticks(S.act_bits_list)
ax.legend()
plt.show()

# %%
ref = runs["absmax", max(S.act_bits_list)].last["test_acc"]
for b in S.act_bits_list:
    a, l = runs["absmax", b].last["test_acc"], runs["lsq", b].last["test_acc"]
    print(f"{b} bits: absmax {a:.2f}% ({a - ref:+.2f} vs {max(S.act_bits_list)}-bit absmax), "
          f"lsq {l:.2f}% (lsq minus absmax {l - a:+.2f} points)")

# %% [markdown]
# Positive "lsq minus absmax" favours the learned steps. At `smoke` the models are small,
# trained for a few epochs with one seed: read the bit width at which accuracy starts to
# fall, not differences of a few tenths of a point.
#
# ## What the learned steps do
#
# Per layer of the lowest-bit models: the mean absmax step of a row (its largest input
# over Q) and the learned LSQ step, over the test images, and how many inputs lie beyond
# the LSQ grid's edge and are clipped. Absmax never clips but spends its few levels on
# each row's outliers; LSQ can trade clipping for resolution.

# %% mystnb={"figure": {"caption": "Per linear layer of the lowest-bit models: the mean per-row absmax step and the learned LSQ step (left), and the fraction of LSQ inputs beyond the grid's edge (right); layer 1 sees the normalized image.", "name": "fig-act-steps"}}
low = min(S.act_bits_list)
data = bk.cached_data(runs["lsq", low].cfg)
st_abs = activation_steps(runs["absmax", low].model, data.test_x)
st_lsq = activation_steps(runs["lsq", low].model, data.test_x)
names = [f"layer {i + 1}" for i in range(len(st_lsq))]
pos = torch.arange(len(names)).tolist()
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
axes[0].bar([p - 0.2 for p in pos], [s["absmax_step"] for s in st_abs], 0.4, label="absmax (mean)")
axes[0].bar([p + 0.2 for p in pos], [s["lsq_step"] for s in st_lsq], 0.4, label="lsq (learned)")
axes[0].set(ylabel="step size", title=f"{low}-bit activations",
            ylim=(0, 1.3 * max(s["absmax_step"] for s in st_abs)))     # room for the legend
axes[0].legend(fontsize=8)
axes[1].bar(pos, [100 * s["clipped"] for s in st_lsq], color="C1")
axes[1].set(ylabel="clipped inputs [%]")
for ax in axes:
    ax.set_xticks(pos, names)
fig.tight_layout()
plt.show()
for name, a, l in zip(names, st_abs, st_lsq):
    print(f"{name}: absmax step {a['absmax_step']:.3f} (mean), lsq step {l['lsq_step']:.3f} "
          f"({l['lsq_step'] / a['absmax_step']:.2f}x), {100 * l['clipped']:.1f}% of inputs clipped")

# %% [markdown]
# A learned step below the absmax one means LSQ chose finer levels and clips the
# largest inputs instead. Taking LSQ to the microcontroller would replace the per-row
# absmax search with one fixed scale per layer (cheaper), but it needs an engine and
# export change that this book has not made.
#
# ## Two-step quantization: activations first, then weights
#
# The ViT quantization report (`shared/seeds/004`) quantizes in two steps: the
# activations first, with float weights, and the weights only once the network has
# adapted to them. Here the same number of epochs either way: in the two-step runs the
# weights stay float (`start_quant: None`) for the first half and are quantized to the
# chapter's type from the middle epoch on (`quant_switch_epoch`), the activations at
# their bit width throughout; against the runs above that quantize both from the start.

# %%
two_step_bits = [b for b in S.act_bits_list if b <= 4][:2] or S.act_bits_list[-1:]
ts_grid = [{"act_bits": b, "act_quant": m, "start_quant": "None",
            "quant_switch_epoch": max(1, S.epochs // 2)}
           for m in METHODS for b in two_step_bits]
two_step = {(r.cfg.act_quant, r.cfg.act_bits): r
            for r in bk.sweep(ts_grid, base=BASE, common=common, desc="two-step")}
display(Markdown(bk.markdown_table([
    dict(act_quant=m, act_bits=b, both_at_once=runs[m, b].last["test_acc"],
         two_step=two_step[m, b].last["test_acc"],
         difference=two_step[m, b].last["test_acc"] - runs[m, b].last["test_acc"])
    for m in METHODS for b in two_step_bits])))

# %% mystnb={"figure": {"caption": "Test accuracy per epoch of both-at-once (solid) and two-step (dashed) training at the lowest activation width compared; the dotted line marks the epoch the two-step runs quantize their weights.", "name": "fig-two-step"}}
low = min(two_step_bits)
fig, ax = plt.subplots(figsize=(7, 3.5))
for i, m in enumerate(METHODS):
    for r, style in ((runs[m, low], "-"), (two_step[m, low], "--")):
        ax.plot([x["epoch"] for x in r.metrics], [x["test_acc"] for x in r.metrics], style,
                color=f"C{i}", label=f"{m}, {'two-step' if r is two_step[m, low] else 'at once'}")
ax.axvline(max(1, S.epochs // 2) + 0.5, ls=":", color="k")
ax.set(xlabel="epoch", ylabel="test accuracy [%]", title=f"{low}-bit activations")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% tags=["remove-input"]
diffs = [two_step[m, b].last["test_acc"] - runs[m, b].last["test_acc"]
         for m in METHODS for b in two_step_bits]
display(Markdown(
    f"Two-step minus both at once: {min(diffs):+.2f} to {max(diffs):+.2f} points over "
    f"{len(diffs)} (method, bits) pairs (one run each, profile `{S.profile}`)."))

# %% [markdown]
# ## Provenance

# %%
bk.show_provenance(S)
