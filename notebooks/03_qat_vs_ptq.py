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
# # QAT vs post-training quantization
#
# ## Overview
#
# Is quantization-aware training worth its cost? The write-up trains the 256-64-64-64-10
# network once per weight type with QAT, then quantizes each trained network after the
# fact (PTQ) to the same or a smaller number of bits, and measures test accuracy. Its
# setup for this section: batch 128, Adam, learning rate 0.01 divided by 10 every 10
# epochs, 30 epochs, no augmentation.
#
# Post-training quantization in `bitnetlib.training.ptq` copies the weights into the same network
# built with another weight type and sets each layer's clip once, by the rule training
# uses; activations stay at 8 bits, so QAT and PTQ are compared like for like.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 3, full 30)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
widths = None          # None: [64, 64, 64]
train_types = None     # QAT weight types; None: profile's list
width_list = None      # widths of the PTQ-vs-QAT sweep; None: profile's (smoke [16, 64], full 16..128)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.ptq import post_training_quantize
from bitnetlib.training.quant import get_quantizer
from bitnetlib.training.train import evaluate

ALL_TYPES = ["None", "8bit", "4bitsym", "2bitsym", "Ternary", "Binary"]
S = bk.chapter(globals(),
               smoke=dict(**bk.PTQ_RECIPE["smoke"], train_types=ALL_TYPES, width_list=[16, 64]),
               full=dict(**bk.PTQ_RECIPE["full"], train_types=ALL_TYPES,
                         width_list=[16, 32, 64, 128]))
common = bk.ptq_recipe(S, device, seed)
S

# %% [markdown]
# ## Training once per weight type
#
# One QAT run per type (`None` is float training).

# %%
runs = bk.sweep([{"quant": q} for q in S.train_types], common=common, desc="QAT runs")
display(Markdown(bk.profile_note(S)))

# %% [markdown]
# ## Quantizing after training
#
# Each trained network is quantized to every type with at most as many bits per weight
# and evaluated on all 10,000 test images.

# %%
data = bk.cached_data(runs[0].cfg)
acc = {}
for r in runs:
    bits = get_quantizer(r.cfg.quant).bits
    for target in ALL_TYPES[1:]:
        if get_quantizer(target).bits <= bits:
            qmodel = post_training_quantize(r.model, r.cfg, target, clip=r.cfg.clip,
                                            quantscale=r.cfg.quantscale)
            acc[r.cfg.quant, target] = evaluate(qmodel, data.test_x, data.test_y)[1]
rows = [dict(trained=t, **{f"-> {q}": acc.get((t, q), "") for q in ALL_TYPES[1:]})
        for t in S.train_types]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Test accuracy after quantizing each trained network (one line per training type) to the weight type on the x axis. Points where training and test type agree are pure QAT.", "name": "fig-prepost"}}
fig, ax = plt.subplots(figsize=(7, 4))
targets = ALL_TYPES[1:]
for t in S.train_types:
    xs = [i for i, q in enumerate(targets) if (t, q) in acc]
    ax.plot(xs, [acc[t, targets[i]] for i in xs], "o-", label=f"trained {t}")
ax.set_xticks(range(len(targets)), targets)
ax.set(xlabel="weight type at test time", ylabel="test accuracy [%]")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# Reading the plot: each line starts at its own QAT accuracy and shows how much is lost
# by rounding to fewer bits after training.

# %%
qat = {t: acc[t, t] for t in S.train_types if (t, t) in acc}
ptq = {q: acc["None", q] for q in targets if ("None", q) in acc}
for q in targets:
    if q in qat and q in ptq:
        print(f"{q:8s} QAT {qat[q]:6.2f}%   PTQ from float {ptq[q]:6.2f}%   "
              f"difference {qat[q] - ptq[q]:+6.2f} points")

# %% [markdown]
# The write-up finds about 98 % for 8-bit weights either way, a large drop for PTQ to
# 4 bits or fewer, and good QAT accuracy even for binary weights; the printed
# differences above are ours for the chosen profile (at `smoke` they are not comparable).
#
# ## Across network widths, and one epoch of QAT after PTQ
#
# The lab notes (`shared/seeds/003`) compare PTQ and QAT across model sizes, with the
# float network as the reference, and try a short QAT fine-tune of the PTQ model. Here:
# for every width, the float network, its PTQ to the type, a QAT run of the type from
# scratch, and one epoch of QAT starting from the float weights (learning rate 0.001,
# the step schedule's second value), all with this chapter's recipe.

# %%
WIDTH_TYPES = ["4bitsym", "2bitsym"]
floats = {w: bk.resolve_config({**common, "widths": [w] * 3, "quant": "None"})
          for w in S.width_list}
qat_w = {(w, q): bk.resolve_config({**common, "widths": [w] * 3, "quant": q})
         for w in S.width_list for q in WIDTH_TYPES}
bk.require([*floats.values(), *qat_w.values()])
tune_w = {(w, q): bk.resolve_config({**common, "widths": [w] * 3, "quant": q, "epochs": 1,
                                     "lr": 0.001, "init_from": bk.run_ref(floats[w])})
          for w in S.width_list for q in WIDTH_TYPES}
bk.require(tune_w.values())
width_rows = []
for w in S.width_list:
    fmodel, fmetrics = bk.run_cached(floats[w])
    for q in WIDTH_TYPES:
        ptq_model = post_training_quantize(fmodel, floats[w], q, clip=floats[w].clip,
                                           quantscale=floats[w].quantscale)
        width_rows.append(dict(width=w, type=q, float=fmetrics[-1]["test_acc"],
                               ptq=evaluate(ptq_model, data.test_x, data.test_y)[1],
                               ptq_plus_1_epoch_qat=bk.run_cached(tune_w[w, q])[1][-1]["test_acc"],
                               qat=bk.run_cached(qat_w[w, q])[1][-1]["test_acc"]))
display(Markdown(bk.markdown_table(width_rows)))

# %% mystnb={"figure": {"caption": "Test accuracy against hidden width: float (black), PTQ (dotted), PTQ plus one epoch of QAT (dashed) and QAT from scratch (solid), per weight type.", "name": "fig-ptq-widths"}}
fig, axes = plt.subplots(1, len(WIDTH_TYPES), figsize=(10, 3.5), sharey=True)
for ax, q in zip(axes, WIDTH_TYPES):
    sel = [r for r in width_rows if r["type"] == q]
    ws = [r["width"] for r in sel]
    for key, style in (("float", "k-o"), ("ptq", ":s"), ("ptq_plus_1_epoch_qat", "--^"),
                       ("qat", "-D")):
        ax.plot(ws, [r[key] for r in sel], style, label=key.replace("_", " "))
    ax.set(xscale="log", xlabel="hidden width", title=q)
    ax.set_xticks(ws, [str(w) for w in ws])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
axes[0].set_ylabel("test accuracy [%]")
axes[0].legend(fontsize=8)
plt.show()

# %% tags=["remove-input"]
gain = [r["ptq_plus_1_epoch_qat"] - r["ptq"] for r in width_rows]
caught_up = sum(r["ptq_plus_1_epoch_qat"] >= r["qat"] for r in width_rows)
display(Markdown(
    f"One epoch of QAT from the float weights ends {min(gain):+.2f} to {max(gain):+.2f} "
    f"points from PTQ, and at or above QAT from scratch in {caught_up} of {len(width_rows)} "
    f"(width, type) cases (one run each, profile `{S.profile}`)."))

# %% [markdown]
# ## Provenance

# %%
bk.show_provenance(S)
