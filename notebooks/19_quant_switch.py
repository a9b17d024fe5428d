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
# # Switching the quantization during training
#
# ## Overview
#
# The research plan's parking lot has "regularization by switching quantization levels":
# train with one weight type first and switch to the target type later. Its notes:
# starting with both a higher and a lower precision than the target "seems to cause
# higher loss"; tried were 2 bit switched to 4 bit at epoch 30, and 8 bit switched to 4
# bit at epochs 10 and 30, with "lower loss when switching at ep10". Switchable and
# cyclic precision training (shared/seeds/002) go further and cycle the precision
# periodically; we study the single switch of the plan.
#
# The config keys `start_quant` and `quant_switch_epoch` train every linear layer with
# `start_quant` before that (0-based) epoch and with `quant` from it on; the clip is
# re-chosen at the switch (`bitnetlib.training.schedule.linear_quant_at`, a pure function of the
# epoch, so a resumed run switches at the same point). The target here is 4bitsym at
# 64/64/64, the write-up's headline FC model.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 4, full 60)
switch_epochs = None   # 0-based epochs of the switch; None: profile's (smoke [1, 2], full [10, 30])
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
quant = "4bitsym"      # the target type
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk

S = bk.chapter(
    globals(),
    smoke=dict(epochs=4, switch_epochs=[1, 2], train_subset=4000, augment=False, threads=1,
               compile=False),
    full=dict(epochs=60, switch_epochs=[10, 30], train_subset=0, augment=True, threads=0,
              compile=True))
early, late = min(S.switch_epochs), max(S.switch_epochs)
common = dict(quant=quant, widths=[64, 64, 64], epochs=S.epochs, train_subset=S.train_subset,
              augment=S.augment, compile=S.compile, device=device, seed=seed)
grid = [{}] + [{"start_quant": "8bit", "quant_switch_epoch": k} for k in S.switch_epochs] \
    + [{"start_quant": "2bitsym", "quant_switch_epoch": late}]
# labels and printouts count epochs from 1, as the figures do (the config key from 0)
label = lambda c: (f"{c.start_quant}, {c.quant} from epoch {c.quant_switch_epoch + 1}"
                   if c.start_quant else f"{c.quant} throughout")

# %% [markdown]
# ## Training
#
# The constant-4bitsym baseline, 8 bit switched to 4bitsym early and late, and 2bitsym
# switched late, as in the plan.

# %%
runs = bk.sweep(grid, common=common, desc="switch schedules")
display(Markdown(bk.profile_note(S)))
rows = [dict(schedule=label(r.cfg), train_loss=r.last["train_loss"], test_loss=r.last["test_loss"],
             test_acc=r.last["test_acc"]) for r in runs]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Training loss (left), test loss (middle) and the first layer's code entropy (right) per epoch for each schedule; the entropy shows the switch from 8 or 2 bits to 4bitsym.", "name": "fig-switch-curves"}}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
for r in runs:
    ep = [m["epoch"] for m in r.metrics]
    axes[0].plot(ep, [m["train_loss"] for m in r.metrics], "o-", ms=3, label=label(r.cfg))
    axes[1].plot(ep, [m["test_loss"] for m in r.metrics], "o-", ms=3)
    axes[2].plot(ep, [m["layers"][0]["entropy"] for m in r.metrics], "o-", ms=3)
axes[0].set(xlabel="epoch", ylabel="train loss", yscale="log")
axes[1].set(xlabel="epoch", ylabel="test loss", yscale="log")
axes[2].set(xlabel="epoch", ylabel="layer 1 entropy [bits]")
for ax in axes:
    ax.xaxis.get_major_locator().set_params(integer=True)
axes[0].legend(fontsize=7)
fig.tight_layout()
plt.show()

# %%
base = runs[0].last
for r in runs[1:]:
    k = r.cfg.quant_switch_epoch
    at_switch = r.metrics[k]["train_loss"] - runs[0].metrics[k]["train_loss"]
    print(f"{label(r.cfg)}: train loss {r.last['train_loss'] - base['train_loss']:+.4f}, "
          f"test loss {r.last['test_loss'] - base['test_loss']:+.4f}, test accuracy "
          f"{r.last['test_acc'] - base['test_acc']:+.2f} points vs constant {quant}; "
          f"in the switch epoch itself {at_switch:+.4f} train loss vs the baseline's same epoch")
by_epoch = {r.cfg.quant_switch_epoch: r.last["train_loss"] for r in runs
            if r.cfg.start_quant == "8bit"}
print(f"8bit switched at epoch {early + 1} ends with "
      f"{'lower' if by_epoch[early] < by_epoch[late] else 'higher'} train loss than switched at "
      f"epoch {late + 1} (the plan: lower when switching early)")

# %% [markdown]
# Negative differences mean the schedule is below the constant-4bitsym baseline. The
# switch-epoch number shows where the switched network starts its 4bitsym training
# relative to a network that was 4bitsym all along (positive: behind). At `smoke` the
# runs are a few epochs on a subset and a single seed: differences of a few hundredths
# in loss or tenths of a point in accuracy are not conclusive.
#
# ## Provenance

# %%
bk.show_provenance(S)
