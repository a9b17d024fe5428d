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
# # LayerNorm vs RMSNorm
#
# ## Overview
#
# Every `BitLinear` layer normalises its input before the 8-bit activation quantization.
# The write-up uses RMSNorm {cite}`zhang2019rmsnorm` (divide each row by its root mean
# square); the research plan that followed it notes that LayerNorm
# {cite}`ba2016layernorm` (subtract the row mean first) "seems to be better than RMSnorm
# for very small networks where it improves convergence", and asks three questions:
# does it help networks that are at capacity, does it help generalisation, and what does
# it cost on the microcontroller, where the kernels skip zero inputs and LayerNorm leaves
# (almost) no zero activations?
#
# The config key `norm` (`rmsnorm`, the default, or `layernorm`) selects the
# normalisation of every `BitLinear` (`bitnetlib.training.layers.normalize`; no gain or bias in
# either). This is a training-side comparison only: the integer C engine and the
# CH32V003 firmware implement RMSNorm in its integer form (ShiftNorm, a power-of-two
# scale after ReLU, chapter 13) and have no LayerNorm, so LayerNorm models cannot be
# exported. The zero-activation count below is measured on the training-side model
# (`bitnetlib.training.probes`), whose 8-bit activations are what the engine's would be.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 4, full 60)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
widths = None          # hidden width of the 3-hidden-layer FC models; None: profile's list
quant = "4bitsym"
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.probes import input_zero_fractions, nonzero_pairs

S = bk.chapter(
    globals(),
    smoke=dict(epochs=4, train_subset=4000, widths=[16, 64], augment=False, threads=1,
               compile=False),
    full=dict(epochs=60, train_subset=0, widths=[16, 32, 64], augment=True, threads=0,
              compile=True))
NORMS = ("rmsnorm", "layernorm")
common = dict(quant=quant, epochs=S.epochs, train_subset=S.train_subset, augment=S.augment,
              compile=S.compile, device=device, seed=seed)
grid = [{"norm": n, "widths": [w] * 3} for w in S.widths for n in NORMS]

# %% [markdown]
# ## Convergence
#
# We train the 3-hidden-layer FC network with each normalisation at a small and a larger
# width and follow the test accuracy per epoch.

# %%
runs = bk.sweep(grid, common=common, desc="norms")
run = {(r.cfg.norm, r.cfg.widths[0]): r for r in runs}
display(Markdown(bk.profile_note(S)))
rows = [dict(norm=r.cfg.norm, width=r.cfg.widths[0], train_acc=r.last["train_acc"],
             test_acc=r.last["test_acc"], test_loss=r.last["test_loss"]) for r in runs]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Test accuracy per epoch with RMSNorm (solid) and LayerNorm (dashed); one colour per hidden width.", "name": "fig-norm-curves"}}
fig, ax = plt.subplots(figsize=(7, 4))
for i, w in enumerate(S.widths):
    for n, style in zip(NORMS, ("-", "--")):
        m = run[n, w].metrics
        ax.plot([x["epoch"] for x in m], [x["test_acc"] for x in m], style, color=f"C{i}",
                marker="o", ms=3, label=f"{n}, width {w}")
ax.set(xlabel="epoch", ylabel="test accuracy [%]")
ax.xaxis.get_major_locator().set_params(integer=True)
ax.legend(fontsize=8)
plt.show()

# %%
for w in S.widths:
    rms, ln = run["rmsnorm", w].metrics, run["layernorm", w].metrics
    first = ln[0]["test_acc"] - rms[0]["test_acc"]
    last = ln[-1]["test_acc"] - rms[-1]["test_acc"]
    print(f"width {w}: LayerNorm minus RMSNorm test accuracy after epoch 1 {first:+.2f} points, "
          f"after epoch {len(ln)} {last:+.2f} points")

# %% [markdown]
# Positive numbers favour LayerNorm. The plan's claim is about the early epochs of very
# small networks; at `smoke` (one seed, a training subset, few epochs) a difference of a
# few tenths of a point is within seed-to-seed noise and is not conclusive.
#
# ## Generalisation
#
# The gap between training and test accuracy at the end of training, per width.

# %% mystnb={"figure": {"caption": "Final test accuracy (left) and train minus test accuracy (right) against hidden width, for each normalisation.", "name": "fig-norm-width"}}
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
for n, style in zip(NORMS, ("o-", "s--")):
    last = [run[n, w].last for w in S.widths]
    a.plot(S.widths, [m["test_acc"] for m in last], style, label=n)
    b.plot(S.widths, [m["train_acc"] - m["test_acc"] for m in last], style, label=n)
a.set(xlabel="hidden width", ylabel="test accuracy [%]")
b.set(xlabel="hidden width", ylabel="train - test accuracy [points]")
for ax in (a, b):
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(S.widths, [str(w) for w in S.widths])
a.legend()
fig.tight_layout()
plt.show()

# %%
gaps = {n: [run[n, w].last["train_acc"] - run[n, w].last["test_acc"] for w in S.widths]
        for n in NORMS}
smaller = sum(l < r for l, r in zip(gaps["layernorm"], gaps["rmsnorm"]))
print(f"LayerNorm has the smaller train-test gap at {smaller} of {len(S.widths)} widths")

# %% [markdown]
# ## The cost: zero activations
#
# The MCU's FC kernels skip zero inputs (chapter 13): a layer costs (non-zero inputs) x
# (outputs) input-weight pairs. After a ReLU about half of the hidden activations are
# zero, and RMSNorm, a pure scaling, keeps them zero; LayerNorm subtracts the row mean,
# which turns them into a negative value. We count, over the test images, the zero
# entries of each layer's 8-bit input. Layer 1's input is the image, which the engine
# centres so that the background is zero, independently of the normalisation, so only
# the hidden layers (2 to 4) are compared.

# %%
data = bk.cached_data(runs[0].cfg)
x_test = data.test_x[:2000]
zeros = {(r.cfg.norm, r.cfg.widths[0]): input_zero_fractions(r.model, x_test) for r in runs}
pairs = {(r.cfg.norm, r.cfg.widths[0]): nonzero_pairs(r.model, x_test) for r in runs}
rows = [dict(norm=n, width=w, **{f"layer {i + 1} zero %": 100 * z
                                  for i, z in enumerate(zeros[n, w]) if i > 0},
             hidden_pairs=round(sum(pairs[n, w][1:]))) for w in S.widths for n in NORMS]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Fraction of zero 8-bit inputs of each hidden layer over 2,000 test images, RMSNorm against LayerNorm, for the largest width.", "name": "fig-norm-zeros"}}
w = S.widths[-1]
layers = range(2, len(zeros["rmsnorm", w]) + 1)
fig, ax = plt.subplots(figsize=(6.5, 3.5))
for k, n in enumerate(NORMS):
    ax.bar([l + 0.2 * (2 * k - 1) for l in layers], [100 * z for z in zeros[n, w][1:]],
           width=0.4, label=n)
ax.set(xlabel="layer", ylabel="zero inputs [%]", xticks=list(layers))
ax.legend()
plt.show()

# %%
hidden_mean = lambda per_layer: sum(per_layer[1:]) / len(per_layer[1:])   # layers 2..n
for w in S.widths:
    ratio = sum(pairs["layernorm", w][1:]) / sum(pairs["rmsnorm", w][1:])
    print(f"width {w}: hidden-layer input-weight pairs not skipped, LayerNorm / RMSNorm = "
          f"{ratio:.2f}; zero hidden inputs RMSNorm {100 * hidden_mean(zeros['rmsnorm', w]):.1f}% "
          f"vs LayerNorm {100 * hidden_mean(zeros['layernorm', w]):.1f}%")

# %% [markdown]
# The ratio is the factor by which the hidden layers' multiply-accumulate work on the
# MCU would grow with LayerNorm (the first layer, usually the largest, is unchanged).
# Whatever LayerNorm gains in accuracy has to be weighed against that, and against an
# integer kernel that does not exist yet (a per-row mean subtraction before ShiftNorm).
#
# ## Provenance

# %%
bk.show_provenance(S)
