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
# # Mixed precision per layer
#
# ## Overview
#
# Every FC model so far gives all its linear layers one weight type. The research plan
# lists "mixed quantization, use 2 bit for first layers to compress data" (the first
# layer, 256 inputs wide, holds most of the weights) and notes that a 2-bit first layer
# with 96 features and 4 bit for the rest brought no improvement. The mixed-precision
# lab (shared/seeds/003) searches a type per layer with Optuna, because "different
# layers have different sensitivity to quantization", as HAQ {cite}`wang2019haq` does
# with a hardware cost model.
#
# Here the search is plain: the packed size of an assignment is known before training
# (bits per weight times weights, `bitnetlib.training.mixed.packed_bytes`), so we train every
# assignment of `types` to the linear layers that fits a byte budget (the size of the
# uniform `budget_type` model), or a seeded random sample of them when there are more
# than `max_trials`, each by quantization-aware training from scratch with
# `quant_per_layer`. Beside them are the uniform models of every type, each layer
# lowered alone to `low_type` (a sensitivity test), and the plan's wider 2-bit first
# layer.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about 30 s on a CPU; "full": the write-up's training recipe
epochs = None          # None: profile's value (smoke 3, full 60)
widths = None          # hidden widths; None: profile's (smoke [32, 32], full [64, 64, 64])
types = None           # candidate types per layer; None: profile's (smoke 3, full 5 types)
budget_type = "4bitsym"  # the budget is the packed size of the uniform model of this type
low_type = "2bitsym"   # the type a single layer is lowered to in the sensitivity test
max_trials = None      # assignments trained at most (0: all); None: profile's (smoke 0, full 40)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.book.mixed import BASE, budget_bytes, handpicked, handpicked_grid, mixed_settings
from bitnetlib.training.mixed import packed_bytes, pareto_front
from bitnetlib.training.models import layer_quants

S, common = mixed_settings(globals())       # the profiles live in bitnetlib/book/mixed.py
n_layers = len(S.widths) + 1
budget = budget_bytes(S, budget_type)
short = lambda quants: "/".join(q.replace("bitsym", "s").replace("bit", "b") for q in quants)

# %% [markdown]
# ## The search
#
# All candidates are trained with the same recipe; the uniform models use `quant`, the
# mixed ones `quant_per_layer` (names below shorten 2bitsym to 2s and 8bit to 8b).

# %%
_, lowered, searched, _ = handpicked(S, budget_type, low_type, seed)
runs = bk.sweep(handpicked_grid(S, budget_type, low_type, seed), base=BASE, common=common,
                desc="per-layer types")
for r in runs:
    r.quants, r.bytes = layer_quants(r.cfg), packed_bytes(S.widths, layer_quants(r.cfg))
uniform, candidates = runs[:len(S.types)], [r for r in runs if r.bytes <= budget]
display(Markdown(bk.profile_note(S)))
print(f"budget {budget:.0f} bytes (uniform {budget_type} at widths {S.widths}); "
      f"{len(searched)} assignment(s) fit it, {len(runs)} model(s) trained")

# %% mystnb={"figure": {"caption": "Test accuracy against packed weight bytes: every trained per-layer assignment (grey), the uniform models (coloured), the Pareto front of all of them (line) and the byte budget (dotted).", "name": "fig-mixed-pareto"}}
points = [(r.bytes, r.last["test_acc"]) for r in runs]
front = pareto_front(points)
fig, ax = plt.subplots(figsize=(7.5, 4.2))
ax.scatter(*zip(*points[len(S.types):]), s=14, color="0.6", label="mixed per layer")
for i, r in enumerate(uniform):
    ax.scatter(r.bytes, r.last["test_acc"], s=40, color=f"C{i}", zorder=3,
               label=f"uniform {r.cfg.quant}")
ax.plot(*zip(*[points[i] for i in front]), "k-", lw=1, label="Pareto front")
ax.axvline(budget, ls=":", color="k", label=f"budget ({budget_type})")
ax.set(xlabel="packed weight bytes", ylabel="test accuracy [%]")
ax.legend(fontsize=7)
plt.show()

# %%
best = max(candidates, key=lambda r: r.last["test_acc"])
ref = next(r for r in uniform if r.cfg.quant == budget_type)
print(f"best within the budget (uniform models included): {short(best.quants)}, {best.bytes:.0f} bytes, "
      f"{best.last['test_acc']:.2f}% vs uniform {budget_type} {ref.last['test_acc']:.2f}% "
      f"({best.last['test_acc'] - ref.last['test_acc']:+.2f} points)")
on_front = [runs[i] for i in front]
print("Pareto front: " + ", ".join(f"{short(r.quants)} ({r.bytes:.0f} B, {r.last['test_acc']:.2f}%)"
                                   for r in on_front))
low_first = sum(r.quants[0] in (S.types[0], low_type) for r in on_front)
print(f"{low_first} of the {len(on_front)} front models give the first layer "
      f"{' or '.join(sorted({S.types[0], low_type}))}")

# %% [markdown]
# The front is read from this run's models only: at `smoke` the models are small,
# trained for a few epochs on a subset and with one seed, so neighbouring points differ
# by amounts that a second seed could reverse; read the shape of the front (which
# layers can go low), not its ranking.
#
# ## Which layer is sensitive
#
# Starting from uniform `budget_type`, one layer at a time is lowered to `low_type`:
# what each layer costs in accuracy per byte saved.

# %% mystnb={"figure": {"caption": "Accuracy change (left) and bytes saved (right) when one layer of the uniform model is lowered alone to the low type; layer 1 sees the 256 input pixels, the last layer gives the 10 logits.", "name": "fig-mixed-sensitivity"}}
by_quants = {tuple(r.quants): r for r in runs}
drops = [by_quants[tuple(a)].last["test_acc"] - ref.last["test_acc"] for a in lowered]
saved = [ref.bytes - packed_bytes(S.widths, a) for a in lowered]
names = [f"layer {i + 1}" for i in range(n_layers)]
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].bar(names, drops, color="C3")
axes[0].axhline(0, color="k", lw=0.8)
axes[0].set(ylabel="accuracy change [points]", title=f"{low_type} in one layer")
axes[1].bar(names, saved, color="C0")
axes[1].set(ylabel="bytes saved")
fig.tight_layout()
plt.show()
for name, d, s in zip(names, drops, saved):
    print(f"{name} as {low_type}: {d:+.2f} points, {s:.0f} bytes saved")

# %% [markdown]
# ## The plan's wider 2-bit first layer
#
# The plan tried a 2-bit first layer with 1.5 times the features (96 instead of 64) and
# 4 bit for the rest; here the first hidden width is scaled by 1.5 the same way.

# %%
wide_widths = [int(1.5 * S.widths[0])] + S.widths[1:]
wide_quants = [low_type] + [budget_type] * (n_layers - 1)
wide = bk.sweep([{"widths": wide_widths, "quant_per_layer": wide_quants}], base=BASE,
                common=common, desc="wide first layer")[0]
wide_bytes = packed_bytes(wide_widths, wide_quants)
print(f"{low_type} first layer, widths {wide_widths}: {wide_bytes:.0f} bytes, "
      f"{wide.last['test_acc']:.2f}% vs uniform {budget_type} {S.widths}: {ref.bytes:.0f} bytes, "
      f"{ref.last['test_acc']:.2f}% ({wide.last['test_acc'] - ref.last['test_acc']:+.2f} points)")

# %% [markdown]
# The plan's finding ("no improvement") would read here as a difference near zero or
# below; at `smoke` one seed and a few epochs make a difference of a few tenths of a
# point inconclusive either way.
#
# ## Provenance

# %%
bk.show_provenance(S)
