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
# # Introduction and background
#
# ## Overview
#
# Large language models have recently been trained with weights of "1 bit" or "1.58 bits"
# {cite}`ma2024era`: with quantization-aware training (QAT) they lose almost nothing
# against full-precision weights. The write-up this book reproduces
# {cite}`bitnetmcu2024` asks what the same idea buys on the smallest computers there are.
#
# Its target is the CH32V003, a 32-bit RISC-V microcontroller that costs less than
# \$0.15. It implements RV32EC (16 registers, *no hardware multiplier*) at 48 MHz and has
# 16 KB of flash and 2 KB of RAM. Few-bit weights help twice: the model fits into flash,
# and with weights of $\pm 2^k$ or $\pm\frac12, \pm\frac32, \ldots$ inference needs only
# additions and shifts.
#
# The task is MNIST, downscaled from 28x28 to 16x16 pixels to save memory, and the goal
# is the highest test accuracy that fits the chip. The write-up reaches 99.0 % with a
# 4-bit fully connected network of about 12 KB.
#
# ## Background
#
# Quantization of deep networks is an old subject {cite}`gholami2021survey`. Approaches
# differ in three ways.
#
# Pre- or post-training quantization
# : QAT quantizes weights (and activations) during training, so the network learns to
#   live with the rounding error. Post-training quantization (PTQ) rounds a trained
#   float network afterwards: more flexible, less accurate at few bits (chapter 3).
#
# Weight precision
# : 8 bits (W8), 4 bits (W4), 2 bits (W2), ternary (W1.58) or binary (W1). Fewer bits
#   per weight means less flash for the same number of weights.
#
# Activation precision
# : Float, 16-bit (A16), 8-bit (A8), down to 1 bit (A1). Smaller activations save RAM.
#
# The extreme W1A1 case, as in XNOR-Net and BinaryNet
# {cite}`rastegari2016xnor,courbariaux2016binarynet`, needs much wider networks to make up
# for the lost information, and single bits are awkward on a 32-bit core. The write-up
# therefore keeps activations at 8 bits and varies the weight precision, using QAT
# throughout and PTQ for comparison.
#
# ## How this book works
#
# Every chapter is a notebook that runs the experiment it describes with the library
# `bitnetlib`. Each has a `parameters` cell: `profile = "smoke"` runs in about a minute
# on a laptop CPU and only shows that the code works; `profile = "full"` uses the
# write-up's settings. Training runs are cached by configuration, so a rerun only trains
# what changed. Each chapter ends with its provenance (commit, date, device, profile,
# wall time).

# %% tags=["parameters"]
profile = "smoke"      # "smoke" or "full" (nothing here trains; the profile is recorded)
n_digits = 32          # test images shown
device = "auto"
seed = 0

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.config import load_config
from bitnetlib.training.data import load_mnist
from bitnetlib.training.models import build_model
from bitnetlib.training.stats import model_stats

S = bk.chapter(globals(), smoke={}, full={})
data = load_mnist(None, "cpu", train_subset=1000)

# %% [markdown]
# ## The data
#
# The network sees MNIST digits at 16x16 pixels, normalised with the data set's mean and
# standard deviation. Here are the first test images at the resolution the network and
# the microcontroller see them.

# %% mystnb={"figure": {"caption": "The first test images at 16x16 pixels, with their labels.", "name": "fig-digits"}}
fig, axes = plt.subplots(2, n_digits // 2, figsize=(n_digits / 2 * 0.7, 1.7))
for ax, img, label in zip(axes.flat, data.test_x, data.test_y):
    ax.imshow(img[0], cmap="gray_r")
    ax.set_title(int(label), fontsize=8)
    ax.axis("off")
plt.show()
print(f"train images: 60,000 (1,000 loaded here), test images: {len(data.test_y):,}, "
      f"pixels per image: {data.test_x[0].numel()}")

# %% [markdown]
# At 256 pixels a digit is still readable; every first-layer neuron has 256 weights.
#
# ## What fits into 16 KB of flash
#
# The write-up's network is 256 inputs, three hidden layers of 64 and 10 outputs. We
# count its weights and storage for each weight type with the library's own statistics.

# %%
rows = []
for q in ["None", "8bit", "4bitsym", "2bitsym", "Ternary", "Binary"]:
    stats = model_stats(build_model(load_config(None, [f"quant={q}", "widths=[64,64,64]"])))
    rows.append(dict(type=q, weights=sum(s["n_weights"] for s in stats),
                     KiB=sum(s["bytes"] for s in stats) / 1024))
display(Markdown(bk.markdown_table(rows)))

# %% [markdown]
# Only the types with 4 bits or fewer per weight leave room in 16 KB of flash for the
# program itself; float weights would not fit at all. The following chapters ask how to
# spend a budget of about 12 KB best.
#
# ## Provenance

# %%
bk.show_provenance(S)
