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
# # Seed variation and the 99 % bar
#
# ## Overview
#
# The write-up's headline is one number: 99.02 % for the 4bitsym 64/64/64 network with
# augmentation after 60 epochs, "after slightly tweaking the data augmentation
# parameters". Single runs of that recipe, ours included, land a little above or
# below 99 % depending on the run. How much of that spread is the random seed alone (initial weights, batch order and the
# augmentation draws), and is a tenth of a point between two recipes a real difference?
#
# This chapter trains the recipe with several seeds for a few variants: the write-up's
# (proportional clip, learning rate 0.001), OCTAV clipping (chapter 10), OCTAV with the
# learning rate doubled, and that with mild label smoothing (the cross entropy's target
# is 0.95 on the label and 0.005 on every class); then two other shapes at the same
# packed bytes, with seeds of their own. Everything else is the headline
# configuration, `configs/fc_4bitsym_64x3_aug.yaml`. Each run uses one thread, so that
# it is the same run (and the same cache entry) as `bitnet train ... --set threads=1`
# started by hand, several at a time; the provenance table at the end gives the
# training time the chapter's runs took.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 3, full 60)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
n_seeds = None         # seeds 0 .. n_seeds-1 per variant; None: profile's (smoke 3, full 15)
shape_seeds = None     # seeds per shape at the same bytes; None: profile's (smoke 2, full 10)
target = 99.0          # the bar, % test accuracy
device = "auto"

# %% tags=["hide-output"]
import textwrap
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from bitnetlib import book as bk

from bitnetlib.book import seeds

S = bk.chapter(globals(), **seeds.PROFILES)
torch.set_num_threads(1)

# %% [markdown]
# ## Training
#
# Every variant with seeds $0, \dots, n-1$; finished runs come from the cache.

# %%
runs = seeds.seed_runs(S, device)
final = {label: np.array([r.last["test_acc"] for r in rs]) for label, rs in runs.items()}
display(Markdown(bk.profile_note(S)))
display(Markdown(bk.markdown_table([seeds.spread_row(k, v, target) for k, v in final.items()])))

# %% mystnb={"figure": {"caption": "Final test accuracy of every seed (dots) and each variant's mean (diamond) with one standard deviation (black bars); the dashed line is the bar, the dotted one the write-up's single reported run.", "name": "fig-seed-strip"}}
long = pd.DataFrame([dict(variant=textwrap.fill(k, 18), acc=a) for k, v in final.items() for a in v])
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.stripplot(data=long, x="variant", y="acc", hue="variant", jitter=0.15, alpha=0.8, ax=ax,
              legend=False)
sns.pointplot(data=long, x="variant", y="acc", errorbar="sd", color="k", linestyle="none",
              markers="D", markersize=5, capsize=0.1, ax=ax)
ax.axhline(target, ls="--", color="k", lw=1, label=f"{target} %")
ax.axhline(bk.WRITEUP["FC 4bitsym 64/64/64"]["point"][1], ls=":", color="gray",
           label="write-up (one run)")
ax.set(xlabel="", ylabel="final test accuracy [%]")
ax.tick_params(axis="x", labelsize=8)
ax.legend(fontsize=8)
ax.grid(alpha=0.3, axis="y")
plt.show()

# %% [markdown]
# The last column reads the spread as a normal distribution: the chance that one more
# run of the variant, with a new seed, ends at or above the bar.
#
# ## Seed noise against the differences between recipes
#
# The standard error of a difference of two means of $n$ runs each is
# $\sqrt{s_1^2/n + s_2^2/n}$; a difference smaller than about twice that is not
# distinguishable from seed noise at this number of runs.

# %%
ref_label, ref = next(iter(final.items()))
for label, acc in list(final.items())[1:]:
    diff = acc.mean() - ref.mean()
    se = np.sqrt(acc.var(ddof=1) / len(acc) + ref.var(ddof=1) / len(ref))
    print(f"{label}: {diff:+.3f} points vs {ref_label}, standard error {se:.3f} "
          f"({abs(diff) / se:.1f} standard errors)")

# %% [markdown]
# ## What the chip would compute
#
# The accuracies above are the fake-quantized PyTorch model's. The write-up's 99.02 % is
# the C engine's, which computes the integer model (chapter 14): ShiftNorm's
# power-of-two scaling changes a few predictions either way. Every run, exported and
# run through the C engine on all 10,000 test images (a few seconds each, cached):

# %%
verified = {label: [bk.verify_cached(r.cfg) for r in rs] for label, rs in runs.items()}
c_final = {label: np.array([v["acc_c"] for v in vs]) for label, vs in verified.items()}
rows = []
for label, acc in c_final.items():
    best = int(acc.argmax())
    rows.append(dict(variant=label, c_mean=acc.mean(), c_std=acc.std(ddof=1),
                     **{f"c_runs >= {target}": int((acc >= target).sum())},
                     c_best=acc[best], best_seed=runs[label][best].cfg.seed,
                     c_vs_integer_mismatches=sum(v["mismatch_c_int"] for v in verified[label])))
display(Markdown(bk.markdown_table(rows)))
shift = np.concatenate([c_final[k] - final[k] for k in final])
print(f"C engine minus fake-quant accuracy per run: {shift.min():+.2f} to {shift.max():+.2f} "
      f"points, mean {shift.mean():+.3f}")

# %% [markdown]
# ## Other shapes at the same bytes
#
# The recipe's shape is the write-up's; two others at no more than its 12,608 packed
# bytes were each the best single run of their kind in this book: a wider first hidden
# layer in 2bitsym (chapter 22's mixed precision, 96/64/64) and two hidden layers
# (chapter 5's depth at equal bytes, 80/48). A single run is within the seed spread
# measured above, so each is trained with seeds of its own and run through the C engine.

# %%
from bitnetlib.deploy.model import fc_weight_bytes
from bitnetlib.training.models import layer_quants

shape_runs = seeds.seed_runs(S, device, seeds.SHAPES, n_seeds=S.shape_seeds)
groups = {ref_label: runs[ref_label], **shape_runs}               # the recipe first
shape_acc = {label: np.array([bk.verify_cached(r.cfg)["acc_c"] for r in rs])
             for label, rs in groups.items()}
shape_rows = []
for label, acc in shape_acc.items():
    cfg = groups[label][0].cfg
    wtypes = layer_quants(cfg)
    shape_rows.append(dict(
        variant=label, widths="/".join(map(str, cfg.widths)), types="/".join(wtypes),
        packed_bytes=fc_weight_bytes([256, *cfg.widths, 10], wtypes), runs=len(acc),
        **{"acc_c % (mean ± sd)": f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}",
           "min-max": f"{acc.min():.2f}-{acc.max():.2f}",
           f"c_runs >= {target}": int((acc >= target).sum())}))
display(Markdown(bk.markdown_table(shape_rows)))

# %% tags=["remove-input"]
best = max(list(shape_acc)[1:], key=lambda label: shape_acc[label].mean())
best_row, ref_row = next(r for r in shape_rows if r["variant"] == best), shape_rows[0]
display(Markdown(
    f"Best shape over its seeds: {best}, {best_row['acc_c % (mean ± sd)']} % in the C engine "
    f"at {best_row['packed_bytes']:,} B, against {ref_row['acc_c % (mean ± sd)']} % for the "
    f"recipe at {ref_row['packed_bytes']:,} B; the bar of {target} % as a mean "
    + ("is reached." if shape_acc[best].mean() >= target else "is not reached.")
    + f" Profile `{S.profile}`."))

# %% [markdown]
# Picking the best of $n$ seeds by its test accuracy is a selection on the test set:
# its number is an optimistic estimate of what the recipe gives, by about the spread
# measured above. It is what a single reported figure can mean, though, and the C
# engine's accuracy of a selected run is the deployed model's.
#
# Within one run the test accuracy also moves from epoch to epoch; at the end of the
# cosine schedule the learning rate is close to zero, so the last epochs show how much
# of the spread is left when the weights barely change.

# %% mystnb={"figure": {"caption": "Test accuracy over the last epochs of every run, one panel per variant, one line per seed; the dashed line is the bar.", "name": "fig-seed-last-epochs"}}
tail = max(1, min(10, S.epochs))
fig, axes = plt.subplots(1, len(runs), figsize=(12, 3.4), sharey=True)
for i, (ax, (label, rs)) in enumerate(zip(axes, runs.items())):
    for r in rs:
        m = r.metrics[-tail:]
        ax.plot([x["epoch"] for x in m], [x["test_acc"] for x in m], "-", color=f"C{i}",
                alpha=0.5, lw=1)
    ax.axhline(target, ls="--", color="k", lw=1)
    ax.set_title(textwrap.fill(label, 28), fontsize=8)
    ax.set(xlabel="epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
axes[0].set(ylabel="test accuracy [%]")
fig.tight_layout()
plt.show()

# %%
swing = [np.ptp([x["test_acc"] for x in r.metrics[-tail:]]) for rs in runs.values() for r in rs]
print(f"over the last {tail} epochs a run's test accuracy moves by {np.mean(swing):.3f} points "
      f"on average (largest {np.max(swing):.3f})")

# %% [markdown]
# The table and the two numbers above are the reading: the seed-to-seed standard
# deviation bounds how far any single run, the write-up's included, can be taken as the
# recipe's accuracy. At `smoke` (three short runs on a subset) the spread is that of
# barely trained networks and says nothing about the 99 % bar; the published book runs
# this chapter at `full`, from the results store.
#
# ## Provenance

# %%
bk.show_provenance(S)
