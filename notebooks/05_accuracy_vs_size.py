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
# # Test accuracy and loss vs size
#
# ## Overview
#
# Chapter 4 showed that training loss is predicted by model size. What about the test
# set? The write-up plots test loss against training loss and test accuracy against
# model size, finds a monotonic relationship that saturates (the test loss stops
# falling: overfitting, or too little variety in the training data), and draws the
# 12 KB budget it assumes for the model into the plots.
#
# This chapter reads the runs of chapter 4 (same parameters, so they come from the
# cache; run with other parameters, it trains what is missing).

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 3, full 30)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
widths = None          # the hidden widths swept; None: profile's (as chapter 4)
types = None           # weight types; None: Binary, Ternary, 2bitsym, 4bitsym, 8bit
budget_kib = 12        # the model size budget drawn into the plots [KiB]
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import dataclasses

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk

# %%
S, runs = bk.capacity_sweep(globals(), desc="capacity sweep (cached)")
display(Markdown(bk.profile_note(S)))

# %% [markdown]
# ## Train vs test loss

# %% mystnb={"figure": {"caption": "Final test loss against final training loss; each point is one (type, width) run. The dotted line is test = train.", "name": "fig-train-vs-test-loss"}}
fig, ax = plt.subplots(figsize=(6, 4.5))
for q in S.types:
    sel = [r for r in runs if r.cfg.quant == q]
    ax.plot([r.last["train_loss"] for r in sel], [r.last["test_loss"] for r in sel], "o", label=q)
lo = min(min(r.last["train_loss"], r.last["test_loss"]) for r in runs)
hi = max(max(r.last["train_loss"], r.last["test_loss"]) for r in runs)
ax.plot([lo, hi], [lo, hi], ":", color="gray")
ax.set(xscale="log", yscale="log", xlabel="train loss", ylabel="test loss")
ax.legend()
plt.show()

# %% [markdown]
# Points above the dotted line generalise worse than they fit; where the test loss stops
# following the training loss, more capacity no longer helps.
#
# ## Test accuracy and loss vs model size

# %% mystnb={"figure": {"caption": "Test accuracy (left) and test loss (right) against the total weight storage; the red line marks the size budget.", "name": "fig-acc-vs-size"}}
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
for q in S.types:
    sel = [r for r in runs if r.cfg.quant == q]
    kib = [bk.total_bits(r.metrics) / 8 / 1024 for r in sel]
    a.plot(kib, [r.last["test_acc"] for r in sel], "o-", label=q)
    b.plot(kib, [r.last["test_loss"] for r in sel], "o-", label=q)
for ax, label in ((a, "test accuracy [%]"), (b, "test loss")):
    ax.axvline(budget_kib, color="red", lw=1)
    ax.set(xscale="log", xlabel="weight storage [KiB]", ylabel=label)
    ax.grid(alpha=0.3, which="both")
a.legend()
fig.tight_layout()
plt.show()

# %%
fits = [r for r in runs if bk.total_bits(r.metrics) / 8 / 1024 <= budget_kib]
best = max(fits, key=lambda r: r.last["test_acc"]) if fits else None
if best:
    print(f"best run within {budget_kib} KiB: {best.cfg.quant} width {best.cfg.widths[0]}, "
          f"{bk.total_bits(best.metrics) / 8 / 1024:.2f} KiB, test accuracy {best.last['test_acc']:.2f}%")

# %% [markdown]
# Within the budget the best network is printed above. The write-up, at `full`
# settings, finds test accuracy rising monotonically with size and saturating around
# 98 % without augmentation; at `smoke` our numbers are not comparable.
#
# ## The write-up's 1 KB model
#
# The write-up also runs a 2bitsym 256-16-16-10 network (4,512 weights, 1.1 KB) on the
# chip, at 94.22 % test accuracy, without giving its training settings. Our shipped
# configuration, `configs/fc1k_2bitsym.yaml`, uses the FC recipe: augmentation, OCTAV
# clip, 60 epochs. A network this small may be unable to fit the augmented data at all
# (underfitting: then the training accuracy, not the test accuracy, is the limit), so
# the variants below switch augmentation and the clip.

# %%
K1 = "configs/fc1k_2bitsym.yaml"
k1_common = dict(train_subset=S.train_subset, compile=S.compile, device=S.device, seed=S.seed,
                 **({} if S.profile == "full" else {"epochs": S.epochs}))
k1_variants = [dict(augment=a, clip=c) for a in (True, False) for c in ("octav", "prop")]
bk.require(bk.resolve_config({**k1_common, **v}, K1) for v in k1_variants)
k1 = bk.sweep(k1_variants, base=K1, common=k1_common, desc="1 KB model")
display(Markdown(bk.markdown_table([
    dict(augment=r.cfg.augment, clip=r.cfg.clip, epochs=r.cfg.epochs,
         train_acc=r.last["train_acc"], test_acc=r.last["test_acc"], test_loss=r.last["test_loss"])
    for r in k1])))

# %% tags=["remove-input"]
shipped = k1[0]                       # augment on, OCTAV: configs/fc1k_2bitsym.yaml
top = max(k1, key=lambda r: r.last["test_acc"])
display(Markdown(
    f"The shipped recipe ends at {shipped.last['test_acc']:.2f} % (training accuracy "
    f"{shipped.last['train_acc']:.2f} %); the best variant here, augmentation "
    f"{'on' if top.cfg.augment else 'off'} with the {top.cfg.clip} clip, at "
    f"{top.last['test_acc']:.2f} %, against the write-up's 94.22 %. The best of four is "
    "selected on the test set, so it is an optimistic figure for its recipe."))

# %% [markdown]
# ## Where augmentation starts to pay
#
# The capacity sweep above trains without augmentation. The same runs of two types with
# augmentation on (everything else equal) show, along the size axis, where the harder
# training data starts to help and where a small network only underfits it.

# %%
AUG_TYPES = [q for q in ("2bitsym", "4bitsym") if q in S.types]
plain = [r for r in runs if r.cfg.quant in AUG_TYPES]
aug_cfgs = [dataclasses.replace(r.cfg, augment=True) for r in plain]
bk.require(aug_cfgs)
augmented = [bk.run_cached(c)[1][-1] for c in aug_cfgs]
aug_rows = [dict(type=r.cfg.quant, width=r.cfg.widths[0],
                 kib=bk.total_bits(r.metrics) / 8 / 1024, test_acc_plain=r.last["test_acc"],
                 test_acc_augmented=a["test_acc"], gain=a["test_acc"] - r.last["test_acc"])
            for r, a in zip(plain, augmented)]
display(Markdown(bk.markdown_table(aug_rows)))

# %% mystnb={"figure": {"caption": "Test accuracy gained by augmentation against weight storage, per type (same settings otherwise); above zero augmentation pays.", "name": "fig-aug-gain-vs-size"}}
fig, ax = plt.subplots(figsize=(6, 3.5))
for q in AUG_TYPES:
    sel = [r for r in aug_rows if r["type"] == q]
    ax.plot([r["kib"] for r in sel], [r["gain"] for r in sel], "o-", label=q)
ax.axhline(0, color="k", lw=0.8)
ax.axvline(budget_kib, color="red", lw=1)
ax.set(xscale="log", xlabel="weight storage [KiB]", ylabel="augmented - plain [points]")
ax.legend()
plt.show()

# %% tags=["remove-input"]
pays = [r for r in aug_rows if r["gain"] > 0]
display(Markdown(
    "Augmentation raises the test accuracy in "
    f"{len(pays)} of {len(aug_rows)} (type, width) runs" +
    (f"; the smallest network it helps stores {min(r['kib'] for r in pays):.2f} KiB"
     if pays else "") + f" (one seed each, profile `{S.profile}`)."))

# %% [markdown]
# ## Depth and taper at equal bytes
#
# The write-up's structure exploration (augmentation, 60 epochs) finds test accuracy
# still ordered by model size when the depth drops from 4 hidden layers to 3. Here the
# 4bitsym recipe (`configs/fc_4bitsym_64x3_aug.yaml`) with the same weight budget spent
# on 2, 3 or 4 hidden layers, and on a tapered stack.

# %%
SHAPES = {"2 hidden, 80/64": [80, 64], "3 hidden, 64/64/64": [64, 64, 64],
          "4 hidden, 56/56/56/56": [56, 56, 56, 56], "3 hidden, tapered 80/48/24": [80, 48, 24]}
shape_common = dict(train_subset=S.train_subset, compile=S.compile, device=S.device,
                    seed=S.seed, **({} if S.profile == "full" else {"epochs": S.epochs}))
shape_grid = [{"widths": w} for w in SHAPES.values()]
bk.require(bk.resolve_config({**shape_common, **g}, "configs/fc_4bitsym_64x3_aug.yaml")
           for g in shape_grid)
shaped = bk.sweep(shape_grid, base="configs/fc_4bitsym_64x3_aug.yaml", common=shape_common,
                  desc="shapes")
display(Markdown(bk.markdown_table([
    dict(shape=name, weights=bk.n_weights(r.metrics), kib=bk.total_bits(r.metrics) / 8 / 1024,
         train_acc=r.last["train_acc"], test_acc=r.last["test_acc"], test_loss=r.last["test_loss"])
    for name, r in zip(SHAPES, shaped)])))

# %% tags=["remove-input"]
ranked = sorted(zip(SHAPES, shaped), key=lambda t: -t[1].last["test_acc"])
spread = ranked[0][1].last["test_acc"] - ranked[-1][1].last["test_acc"]
display(Markdown(
    f"Best: {ranked[0][0]} at {ranked[0][1].last['test_acc']:.2f} %; the four shapes span "
    f"{spread:.2f} points (one seed each, profile `{S.profile}`). " +
    ("At `smoke` the runs are too short for a verdict." if S.profile == "smoke" else
     "Within a few tenths of a point, about the seed spread of one run: the budget, not "
     "its arrangement, sets the accuracy." if spread < 0.3 else
     "More than the seed spread of one run: the arrangement matters.")))

# %% [markdown]
# ## Provenance

# %%
bk.show_provenance(S)
