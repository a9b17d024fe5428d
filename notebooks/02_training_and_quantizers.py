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
# # The training code and the quantizers
#
# ## Overview
#
# The write-up trains small fully connected networks with quantization-aware training
# (QAT) in the style of BitNet {cite}`ma2024era,ma2024tips`: every linear layer normalises
# its input with RMSNorm {cite}`zhang2019rmsnorm`, quantizes the activations to 8 bits and
# the weights to a few bits in the forward pass, and lets the gradient pass both
# quantizers unchanged, the straight-through estimator (STE) {cite}`bengio2013ste`.
#
# This chapter shows
#
# 1. the level set of every weight type in `bitnetlib.training.quant`,
# 2. the layer's forward pass as the library implements it, and
# 3. one short training run of the 256-64-64-64-10 network with `4bitsym` weights and the
#    histogram of its quantized weights.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: the profile's value (smoke 3, full 60)
train_subset = None    # training images (0: all 60,000); None: profile's value
widths = None          # hidden layer widths; None: [64, 64, 64]
quant = "4bitsym"      # weight type of the training run
augment = None         # None: profile's value (smoke off, full on)
device = "auto"        # "auto", "cpu" or "cuda"
seed = 0
threads = None         # torch CPU threads; None: profile's value (smoke 1, full all)

# %% tags=["hide-output"]
import inspect
import math

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.layers import _BitLinearFn
from bitnetlib.training.quant import QUANTIZERS, get_quantizer

S = bk.chapter(
    globals(),
    smoke=dict(epochs=3, train_subset=4000, widths=[64, 64, 64], augment=False, threads=1,
               compile=False),
    full=dict(epochs=60, train_subset=0, widths=[64, 64, 64], augment=True, threads=0,
              compile=True))
S

# %% [markdown]
# ## The weight types
#
# Each type maps a weight $w$ and the layer's clip value $c$ to one of a fixed set of
# levels: $\mathrm{step} = c / \mathrm{edge}$ and $\hat w = \mathrm{level}[\mathrm{code}]
# \cdot \mathrm{step}$. The table lists what the library defines.

# %%
types = [name for name in QUANTIZERS if name != "None"]
rows = [dict(type=q.name, bits_per_weight=q.bits, levels=q.n_levels, edge_in_steps=q.edge,
             integer_levels=" ".join(map(str, q.int_levels[:4])) + (" ..." if q.n_levels > 4 else ""))
        for q in map(get_quantizer, types)]
display(Markdown(bk.markdown_table(rows)))

# %% [markdown]
# We plot each type's transfer function, the quantized value against the float weight,
# with the clip set to 1.

# %% mystnb={"figure": {"caption": "Quantized weight against float weight for every type (clip = 1). Binary splits at the tensor mean; the others round to the nearest level and saturate at the clip.", "name": "fig-levels"}}
w = torch.linspace(-1.4, 1.4, 2001)
fig, axes = plt.subplots(2, 4, figsize=(12, 5.5), sharex=True)
for ax, name in zip(axes.flat, types):
    q = get_quantizer(name)
    ax.plot(w, q.fake_quant(w, torch.tensor(1.0)), lw=1.5)
    ax.plot(w, w, ":", color="gray", lw=0.8)
    ax.set_title(f"{name} ({q.n_levels} levels)")
    ax.grid(alpha=0.3)
for ax in axes[-1]:
    ax.set_xlabel("float weight / clip")
fig.tight_layout()
plt.show()

# %% [markdown]
# The staircase widths differ: the uniform types have equal steps, FP130 doubles its
# step from level to level, and NF4 places its levels at quantiles of a normal
# distribution.
#
# ## The forward pass
#
# The library fuses one layer's forward pass (ReLU of the previous layer, RMSNorm,
# 8-bit absmax activations, quantized weights) into one autograd function with a
# hand-written backward pass that implements the STE.

# %%
print(inspect.getsource(_BitLinearFn.forward))

# %% [markdown]
# ## A training run
#
# We train the network once with the chapter's settings (cached: a rerun with the same
# settings loads the result).

# %%
cfg = dict(quant=quant, widths=S.widths, epochs=S.epochs, train_subset=S.train_subset,
           augment=S.augment, compile=S.compile, device=device, seed=seed)
model, metrics = bk.run_cached(cfg)
display(Markdown(bk.profile_note(S)))
last = metrics[-1]
print(f"final epoch: train loss {last['train_loss']:.4f}, test accuracy {last['test_acc']:.2f}%, "
      f"{bk.total_bits(metrics) / 8 / 1024:.2f} KiB of weights")

# %% mystnb={"figure": {"caption": "Loss and test accuracy per epoch of the training run.", "name": "fig-run-curves"}}
ep = [m["epoch"] for m in metrics]
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
a.plot(ep, [m["train_loss"] for m in metrics], "o-", label="train")
a.plot(ep, [m["test_loss"] for m in metrics], "s-", label="test")
a.set(xlabel="epoch", ylabel="loss")
a.legend()
b.plot(ep, [m["test_acc"] for m in metrics], "s-")
b.set(xlabel="epoch", ylabel="test accuracy [%]")
fig.tight_layout()
plt.show()

# %%
print(f"training loss {metrics[0]['train_loss']:.4f} after epoch 1, {last['train_loss']:.4f} after "
      f"epoch {last['epoch']}: {'falling' if last['train_loss'] < metrics[0]['train_loss'] else 'not falling'}")

# %% [markdown]
# A falling training loss means the quantized network learns through the STE.
#
# ## Histogram of the quantized weights
#
# The integer codes of each layer after training, with the Shannon entropy of their
# distribution (the most a code can carry is $\log_2$ of the number of levels).

# %% mystnb={"figure": {"caption": "Share of each quantization level per layer after training; the title gives the entropy of the codes in bits.", "name": "fig-code-hist"}}
layers = last["layers"]
fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3), sharey=True)
for i, (ax, s) in enumerate(zip(axes, layers)):
    total = sum(s["histogram"])
    ax.bar(range(len(s["levels"])), [100 * c / total for c in s["histogram"]])
    ax.set_xticks(range(len(s["levels"])), [f"{v:g}" for v in s["levels"]], rotation=90, fontsize=7)
    ax.set_title(f"layer {i + 1}: {s['entropy']:.2f} bits")
axes[0].set_ylabel("share of weights [%]")
fig.tight_layout()
plt.show()
print("entropy per layer [bits]:", ", ".join(f"{s['entropy']:.2f} of {math.log2(len(s['levels'])):.0f}"
                                              for s in layers))

# %% [markdown]
# The write-up finds the codes of QAT weights used close to capacity; the printed
# entropies say how much of each layer's code space our run uses.
#
# ## Provenance

# %%
bk.show_provenance(S)
