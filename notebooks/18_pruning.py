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
# # Pruning: L1 magnitude vs random
#
# ## Overview
#
# The research plan lists "implement pruning to optimize density: start with a larger
# network than the target, then use pruning/distillation", and its self-compression
# experiments ended in the observation that, without learned bit widths, "the
# self-compression methods become equal to pruning". The MASE lab report
# (shared/seeds/003) compares two unstructured pruning rules on a language model, each
# tensor pruned on its own to the same sparsity and fine-tuned for one epoch: removing
# the weights of smallest magnitude (L1) preserves accuracy better than removing weights
# at random, more so the higher the sparsity.
#
# We repeat that comparison on our trained 4bitsym 64/64/64 FC network (the headline
# model of chapter 0, read from the cache). `bitnetlib.training.prune` keeps a per-layer
# `weight_mask`; the quantized weight is `w_q * mask`, so pruned weights are exact
# zeros even though 4bitsym has no zero level, the clip is chosen from the kept weights
# only, and the masked weights are zeroed again after every optimizer step. The config
# keys `init_from` (a finished run), `prune` (`l1`, `random`) and `prune_density`
# (fraction kept per layer) make a pruned fine-tuning run an ordinary cached run.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
densities = None       # fractions of weights kept per layer; None: profile's list
finetune_epochs = None # fine-tuning epochs after pruning; None: profile's value (smoke 1, full 5)
lottery_densities = None  # densities of the lottery-ticket rounds; None: profile's
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.prune import pruned_copy, total_density, weight_density
from bitnetlib.training.train import evaluate

H, base_common = bk.headline_settings(globals())
S = bk.chapter(
    globals(),
    smoke=dict(densities=[0.5, 0.25, 0.1], finetune_epochs=1, threads=1,
               lottery_densities=[0.5, 0.25]),
    full=dict(densities=[0.9, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05], finetune_epochs=5, threads=0,
              lottery_densities=[0.5, 0.25, 0.125]))
S.train_subset, S.epochs = H.train_subset, H.epochs
BASE = "configs/fc_4bitsym_64x3_aug.yaml"
METHODS = ("l1", "random")

# %% [markdown]
# ## The dense model

# %%
base_cfg = bk.resolve_config(base_common, base=BASE)
dense, dense_metrics = bk.run_cached(base_cfg)
data = bk.cached_data(base_cfg)
dense_acc = evaluate(dense, data.test_x, data.test_y)[1]
display(Markdown(bk.profile_note(S)))
print(f"dense 4bitsym {base_cfg.widths}: {base_cfg.epochs} epochs, test accuracy {dense_acc:.2f}%")

# %% [markdown]
# ## Pruning without and with fine-tuning
#
# Each layer is pruned to the same density, by magnitude or at random (seeded), then
# evaluated at once and after fine-tuning (the same recipe as the dense run, cosine
# from its starting learning rate, for a few epochs).

# %%
before = {(m, d): evaluate(pruned_copy(dense, base_cfg, m, d), data.test_x, data.test_y)[1]
          for m in METHODS for d in S.densities}
grid = [dict(init_from=bk.run_ref(base_cfg), prune=m, prune_density=d,
             epochs=S.finetune_epochs) for m in METHODS for d in S.densities]
tuned = {(r.cfg.prune, r.cfg.prune_density): r
         for r in bk.sweep(grid, common=base_common, base=BASE, desc="fine-tuning")}
rows = [dict(method=m, density=d, acc_pruned=before[m, d], acc_finetuned=tuned[m, d].last["test_acc"],
             density_measured=total_density(tuned[m, d].model))
        for m in METHODS for d in S.densities]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Test accuracy against the fraction of weights kept per layer, L1 magnitude and random pruning, right after pruning (dashed) and after fine-tuning (solid); the dotted line is the dense model.", "name": "fig-prune-density"}}
fig, ax = plt.subplots(figsize=(7, 4))
for i, m in enumerate(METHODS):
    ax.plot(S.densities, [before[m, d] for d in S.densities], "--o", color=f"C{i}", ms=4,
            label=f"{m}, pruned")
    ax.plot(S.densities, [tuned[m, d].last["test_acc"] for d in S.densities], "-o", color=f"C{i}",
            ms=4, label=f"{m}, fine-tuned {S.finetune_epochs} epoch(s)")
def density_axes(ax, densities):
    """The dense model's line and the log density axis, ticked at the densities."""
    ax.axhline(dense_acc, ls=":", color="k", label="dense")
    ax.set(xlabel="density (fraction of weights kept)", ylabel="test accuracy [%]", xscale="log")
    ax.minorticks_off()
    ax.set_xticks(densities, [f"{d:g}" for d in densities])
    ax.legend(fontsize=8)


density_axes(ax, S.densities)
plt.show()

# %%
lowest = min(S.densities)
gap_before = before["l1", lowest] - before["random", lowest]
gap_after = tuned["l1", lowest].last["test_acc"] - tuned["random", lowest].last["test_acc"]
print(f"at density {lowest}: L1 minus random {gap_before:+.2f} points right after pruning, "
      f"{gap_after:+.2f} points after fine-tuning")
close = [d for d in S.densities if tuned["l1", d].last["test_acc"] >= dense_acc - 1.0]
print(f"L1 + fine-tuning stays within 1 point of the dense model down to density "
      f"{min(close) if close else 'none of those tried'}")

# %% [markdown]
# Positive differences favour L1, as in the lab report. At `smoke` the dense model is
# trained for only a few epochs on a subset and fine-tuning nearly retrains it: read the
# ordering of the two methods there, not the density at which accuracy holds.
#
# ## Where the kept weights are
#
# The first layer's 16x16 weight images after L1 pruning to the lowest density and
# fine-tuning, and how many of the kept weights look at the central 8x8 pixels (a
# quarter of the image).

# %% mystnb={"figure": {"caption": "First-layer quantized weights (one 16x16 image per neuron; white: pruned) after L1 pruning to the lowest density and fine-tuning.", "name": "fig-prune-first-layer"}}
fig = bk.plot_weight_grid(bk.first_layer_images(tuned["l1", lowest].model)[:32], cols=16, size=0.6)
plt.show()
print("per-layer density after fine-tuning (L1, lowest density):",
      " ".join(f"{d:.3f}" for d in weight_density(tuned["l1", lowest].model)))
kept = (bk.first_layer_images(tuned["l1", lowest].model) != 0).sum(0)   # (16, 16) per pixel
print(f"{100 * float(kept[4:12, 4:12].sum() / kept.sum()):.1f}% of the kept first-layer "
      f"weights look at the central 8x8 pixels (25% of the image)")

# %% [markdown]
# ## What the zeros buy on the MCU
#
# Pruned weights are zeros in the trained model, but not yet on the microcontroller:
# 4bitsym has no zero code (its levels are the odd numbers -15 to 15 in the engine), so
# the export would turn a pruned weight into +-1 unless it used a type with a zero level
# (Ternary, 4bit, 8bit, NF4) or a sparse format; and the current FC kernels skip zero
# *inputs*, not zero weights, so cycles would not fall either. Pruning pays off on the
# CH32V003 only with a sparse weight format (which costs index bits) or, as the plan
# suggests, as a way to find a smaller dense network.
#
# ## Lottery tickets: pruning with rewinding
#
# The research plan asks whether the lottery-ticket procedure {cite}`frankle2019lottery`
# finds better sparse networks: train, prune the smallest weights, *rewind* the kept
# weights to their initial values and train again, several rounds (`prune_rewind:
# true`: masks from the trained source by L1, weights from the run's own seeded
# initialisation, which is the dense run's). Against it: one round of rewinding straight
# to the density, one-shot pruning with the short fine-tuning above, and a dense network
# with as many weights trained from scratch (same recipe, hidden widths scaled down).

# %%
def small_widths(density, depth=3, n_in=256, n_out=10):
    """Equal hidden widths whose dense weight count is closest to ``density`` times the
    base network's (the from-scratch comparison)."""
    n = lambda w: n_in * w + (depth - 1) * w * w + w * n_out
    target = density * n(base_cfg.widths[0])
    return [min(range(1, base_cfg.widths[0] + 1), key=lambda w: abs(n(w) - target))] * depth


def lottery(density, source):
    return bk.resolve_config({**base_common, "init_from": bk.run_ref(source), "prune": "l1",
                              "prune_density": density, "prune_rewind": True}, BASE)


source, rounds = base_cfg, {}
for d in S.lottery_densities:           # round k starts from round k-1: one at a time
    source = lottery(d, source)
    rounds[d] = bk.run_cached(source)[1][-1]
one_shot = {d: lottery(d, base_cfg) for d in S.lottery_densities}
oneshot_ft = {d: bk.resolve_config({**base_common, "init_from": bk.run_ref(base_cfg), "prune": "l1",
                                     "prune_density": d, "epochs": S.finetune_epochs}, BASE)
              for d in S.lottery_densities}
scratch = {d: bk.resolve_config({**base_common, "widths": small_widths(d)}, BASE)
           for d in S.lottery_densities}
bk.require([*one_shot.values(), *oneshot_ft.values(), *scratch.values()])
lt_rows = [dict(density=d, iterative_rewind=rounds[d]["test_acc"],
                one_shot_rewind=bk.run_cached(one_shot[d])[1][-1]["test_acc"],
                one_shot_finetune=bk.run_cached(oneshot_ft[d])[1][-1]["test_acc"],
                dense_from_scratch=bk.run_cached(scratch[d])[1][-1]["test_acc"],
                scratch_widths=scratch[d].widths) for d in S.lottery_densities]
display(Markdown(bk.markdown_table(lt_rows)))

# %% mystnb={"figure": {"caption": "Test accuracy against density: iterative pruning with rewinding (lottery ticket), one round of rewinding, one-shot pruning with a short fine-tuning, and a dense network with as many weights trained from scratch; the dotted line is the dense model.", "name": "fig-lottery"}}
fig, ax = plt.subplots(figsize=(7, 4))
for key, style in (("iterative_rewind", "o-"), ("one_shot_rewind", "s--"),
                   ("one_shot_finetune", "^:"), ("dense_from_scratch", "D-.")):
    ax.plot(S.lottery_densities, [r[key] for r in lt_rows], style, label=key.replace("_", " "))
density_axes(ax, S.lottery_densities)
plt.show()

# %% tags=["remove-input"]
low = lt_rows[-1]
display(Markdown(
    f"At density {low['density']:g}, iterative rewinding minus training the small dense "
    f"network from scratch: {low['iterative_rewind'] - low['dense_from_scratch']:+.2f} "
    f"points; minus one-shot pruning with fine-tuning: "
    f"{low['iterative_rewind'] - low['one_shot_finetune']:+.2f} (one run each, profile "
    f"`{S.profile}`). A sparse network also needs index bits on the chip; the dense "
    "one does not."))

# %% [markdown]
# ## Pruning a larger network down to the target size
#
# The plan's other question: is a larger network pruned to the target's number of
# weights better than the target trained directly? The 4bitsym recipe with twice the
# hidden widths, trained, pruned by L1 to the dense model's weight count and fine-tuned
# for the full schedule, beside the dense model.

# %%
big_cfg = bk.resolve_config({**base_common, "widths": [2 * w for w in base_cfg.widths]}, BASE)
n_w = lambda c: sum(a * b for a, b in zip([256, *c.widths], [*c.widths, 10]))
big_density = round(n_w(base_cfg) / n_w(big_cfg), 4)
pruned_big_cfg = bk.resolve_config({**base_common, "widths": big_cfg.widths,
                                    "init_from": bk.run_ref(big_cfg), "prune": "l1",
                                    "prune_density": big_density}, BASE)
bk.require([big_cfg])
big = bk.run_cached(big_cfg)[1][-1]
pruned_big = bk.run_cached(pruned_big_cfg)[1][-1]
display(Markdown(bk.markdown_table([
    dict(network=f"dense {base_cfg.widths}", weights_kept=n_w(base_cfg), test_acc=dense_acc),
    dict(network=f"dense {big_cfg.widths}", weights_kept=n_w(big_cfg), test_acc=big["test_acc"]),
    dict(network=f"{big_cfg.widths} pruned to density {big_density:g}, retrained",
         weights_kept=round(big_density * n_w(big_cfg)), test_acc=pruned_big["test_acc"])])))

# %% tags=["remove-input"]
display(Markdown(
    f"The pruned larger network minus the dense target: {pruned_big['test_acc'] - dense_acc:+.2f} "
    f"points at the same number of non-zero weights (one run each, profile `{S.profile}`)."))

# %% [markdown]
# ## Provenance

# %%
bk.show_provenance(S)
