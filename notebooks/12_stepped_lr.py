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
# # The stepped learning-rate schedule
#
# ## Overview
#
# The BitNet training tips {cite}`ma2024tips` reduce the learning rate stepwise halfway
# through training. The write-up adds an option `halve_lr_epoch` that halves the learning
# rate from a given epoch on, on top of the cosine schedule, and compares starting rates
# 0.001 and 0.003 with and without halving at epoch 30 (NF4, width 64, 60 epochs). The
# halving improves the training loss at once but the advantage is gone by the end; the
# test loss, however, ends lower, suggesting a regularising effect. The benefits are small.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 4, full 60)
halve_epoch = None     # epoch (0-based) from which the LR is halved; None: epochs // 2
lrs = None             # starting learning rates; None: [0.001, 0.003]
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
quant = "NF4"
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.schedule import lr_at

S = bk.chapter(
    globals(),
    smoke=dict(epochs=4, halve_epoch=None, lrs=[0.001, 0.003], train_subset=4000, augment=False,
               threads=1, compile=False),
    full=dict(epochs=60, halve_epoch=None, lrs=[0.001, 0.003], train_subset=0, augment=True,
              threads=0, compile=True))
halve = S.halve_epoch if S.halve_epoch is not None else S.epochs // 2
common = dict(quant=quant, widths=[64, 64, 64], clip="octav", scheduler="cosine",
              epochs=S.epochs, train_subset=S.train_subset, augment=S.augment,
              compile=S.compile, device=device, seed=seed)
grid = [{"lr": lr, "halve_lr_epoch": h} for lr in S.lrs for h in (-1, halve)]
label = lambda c: f"lr {c.lr:g}" + (f", halved at {c.halve_lr_epoch}" if c.halve_lr_epoch >= 0 else "")

# %% [markdown]
# ## The schedules

# %% mystnb={"figure": {"caption": "Learning rate per epoch for each schedule compared.", "name": "fig-schedules"}}
cfgs = [bk.resolve_config({**common, **g}) for g in grid]
fig, ax = plt.subplots(figsize=(6.5, 3.5))
for c in cfgs:
    ax.plot(range(1, c.epochs + 1), [lr_at(c, e) for e in range(c.epochs)], "o-", ms=3, label=label(c))
ax.set(xlabel="epoch", ylabel="learning rate")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Training

# %%
runs = bk.sweep(grid, common=common, desc="schedules")
display(Markdown(bk.profile_note(S)))
rows = [dict(schedule=label(r.cfg), train_loss=r.last["train_loss"], test_loss=r.last["test_loss"],
             test_acc=r.last["test_acc"]) for r in runs]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Training loss (left) and test loss (right) per epoch for each schedule.", "name": "fig-schedule-loss"}}
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
for r in runs:
    ep = [m["epoch"] for m in r.metrics]
    a.plot(ep, [m["train_loss"] for m in r.metrics], label=label(r.cfg))
    b.plot(ep, [m["test_loss"] for m in r.metrics], label=label(r.cfg))
a.set(xlabel="epoch", ylabel="train loss", yscale="log")
b.set(xlabel="epoch", ylabel="test loss", yscale="log")
a.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %%
for lr in S.lrs:
    plain, stepped = [r for r in runs if r.cfg.lr == lr]
    print(f"lr {lr:g}: halving changes final train loss by {stepped.last['train_loss'] - plain.last['train_loss']:+.4f}, "
          f"test loss by {stepped.last['test_loss'] - plain.last['test_loss']:+.4f}")

# %% [markdown]
# Negative numbers mean the halved schedule ends lower. The write-up finds no lasting
# gain in training loss and a small gain in test loss; at `smoke` ours are not
# comparable.
#
# ## Provenance

# %%
bk.show_provenance(S)
