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
# # Stochastic weight averaging
#
# ## Overview
#
# Stochastic weight averaging {cite}`izmailov2018swa` averages the weights visited late
# in training, which tends to land in a flatter region of the loss and to generalise
# better. The research plan's parking lot reports it "quite mixed so far ... SWA is
# usually worse than the normally trained model", and names the difficulty: "there is
# no straightforward way to average weights in combination with quantization.
# Averaging will move away the weights from the quantization levels, which will add
# noise."
#
# With `swa_start_epoch` the latent float weights at the end of every epoch from that
# epoch on enter an equal-weight running average (`bitnetlib.training.swa`); the average is
# quantized like any weights, with its own clips, and evaluated after every epoch
# (`swa_test_acc` in the metrics); the run's saved model is the average, its checkpoint
# the last iterate. SWA is usually run with a constant or cyclic learning rate, so that
# the averaged points differ; with the cosine schedule the late weights barely move. We
# compare both on the 4bitsym 64/64/64 network.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 6, full 60)
swa_start = None       # 0-based first averaged epoch; None: epochs // 2
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
quant = "4bitsym"
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.layers import quant_layers

S = bk.chapter(
    globals(),
    smoke=dict(epochs=6, swa_start=None, train_subset=4000, augment=False, threads=1,
               compile=False),
    full=dict(epochs=60, swa_start=None, train_subset=0, augment=True, threads=0, compile=True))
start = S.swa_start if S.swa_start is not None else S.epochs // 2
common = dict(quant=quant, widths=[64, 64, 64], epochs=S.epochs, train_subset=S.train_subset,
              augment=S.augment, compile=S.compile, device=device, seed=seed,
              swa_start_epoch=start)
SCHEDULERS = ("cosine", "constant")

# %% [markdown]
# ## Last iterate vs average

# %%
runs = bk.sweep([{"scheduler": s} for s in SCHEDULERS], common=common, desc="swa")
display(Markdown(bk.profile_note(S)))
rows = [dict(scheduler=r.cfg.scheduler, averaged_epochs=f"{start + 1}-{S.epochs}",
             last_iterate_acc=r.last["test_acc"], swa_acc=r.last["swa_test_acc"],
             last_iterate_loss=r.last["test_loss"], swa_loss=r.last["swa_test_loss"])
        for r in runs]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Test accuracy per epoch of the trained weights (solid) and of the running weight average (dashed, from the first averaged epoch), for the cosine and the constant learning rate.", "name": "fig-swa-curves"}}
fig, ax = plt.subplots(figsize=(7, 4))
for i, r in enumerate(runs):
    ax.plot([m["epoch"] for m in r.metrics], [m["test_acc"] for m in r.metrics], "-o", ms=3,
            color=f"C{i}", label=f"{r.cfg.scheduler}, last iterate")
    avg = [m for m in r.metrics if "swa_test_acc" in m]
    ax.plot([m["epoch"] for m in avg], [m["swa_test_acc"] for m in avg], "--s", ms=3,
            color=f"C{i}", label=f"{r.cfg.scheduler}, average")
ax.set(xlabel="epoch", ylabel="test accuracy [%]")
ax.xaxis.get_major_locator().set_params(integer=True)
ax.legend(fontsize=8)
plt.show()

# %%
for r in runs:
    print(f"{r.cfg.scheduler}: average minus last iterate {r.last['swa_test_acc'] - r.last['test_acc']:+.2f} "
          f"points test accuracy, {r.last['swa_test_loss'] - r.last['test_loss']:+.4f} test loss")

# %% [markdown]
# Positive accuracy differences favour the average. The plan found SWA usually worse;
# at `smoke` (a few epochs on a subset, one seed) the difference is not conclusive.
#
# ## How far the average moves the codes
#
# The plan's worry, measured: the share of weights whose 4-bit code differs between the
# average and the last iterate, per layer.

# %% mystnb={"figure": {"caption": "Share of weights per layer whose quantized code differs between the weight average and the last iterate.", "name": "fig-swa-codes"}}
changed = {}
for r in runs:
    last = bk.checkpoint_model(r.cfg)
    changed[r.cfg.scheduler] = [100 * float((a.weight_codes() != b.weight_codes()).float().mean())
                                for a, b in zip(quant_layers(r.model), quant_layers(last))]
fig, ax = plt.subplots(figsize=(6.5, 3.5))
n_layers = len(changed[SCHEDULERS[0]])
for k, s in enumerate(SCHEDULERS):
    ax.bar([l + 1 + 0.2 * (2 * k - 1) for l in range(n_layers)], changed[s], width=0.4, label=s)
ax.set(xlabel="layer", ylabel="codes changed [%]", xticks=list(range(1, n_layers + 1)))
ax.legend()
plt.show()
for s in SCHEDULERS:
    print(f"{s}: {sum(changed[s]) / n_layers:.1f}% of the codes differ on average over the layers")

# %% [markdown]
# What to expect: with the cosine schedule the late iterates are close to each other, so
# the average should change few codes and differ little from the last iterate; with a
# constant rate the iterates wander and the average is a different quantized network,
# which may be better (a flatter region) or worse (the plan's off-grid noise). The
# printed shares say how far apart the two are in this run.
#
# ## Provenance

# %%
bk.show_provenance(S)
