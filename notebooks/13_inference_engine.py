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
# # The inference engine
#
# ## Overview
#
# The write-up's inference engine is a few hundred lines of C without multiplications
# for the low-bit types: every FC layer is a loop over packed weight words, followed by
# one fused block that applies ReLU, rescales the accumulators by a power of two
# (ShiftNorm) and finds the argmax. Our engine (`c_engine/`, contract in
# `c_engine/bitnet.h`) keeps that structure with one kernel per weight type. This
# chapter shows the kernels' source, calls them inline from Python through cppyy on
# numpy arrays (`bitnetlib.deploy.engine`), and looks at what ShiftNorm does to the
# activations compared with the float model's RMSNorm + absmax scaling.
#
# The C engine is built once per source hash with
# `-std=c99 -Wall -Wextra -Werror -pedantic -O2` and loaded by cppyy; every wrapper
# checks dtypes and sizes before calling C.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 2, full 60)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)
timing_repeats = 200   # calls per weight type when timing the kernels

# %% tags=["hide-output"]
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from bitnetlib.deploy import engine, intmodel
from bitnetlib import book as bk
from bitnetlib.training.data import load_mnist
from bitnetlib.deploy.packing import field_values, pack, per_word
from bitnetlib.pipeline import export_run
from bitnetlib.wtypes import TYPE_IDS, TYPES

S, common = bk.headline_settings(globals())
rng = np.random.default_rng(seed)


def show_c(*names):
    """Display C functions of the engine, read from c_engine/*.c."""
    display(Markdown("```c\n" + "\n\n".join(bk.c_function(n) for n in names) + "\n```"))


# %% [markdown]
# ## The kernels
#
# A 4bitsym weight is a 4-bit field $f$ standing for the odd integer $2f - 15$. The
# kernel never multiplies: it builds each product from shifted copies of the
# activation, one per set bit of the weight.

# %%
show_c("bn_fc_4bitsym")

# %% [markdown]
# FP130 weights are $\pm 2^e$: the product is a single shift of the activation.
# The binary kernel only adds or subtracts.

# %%
show_c("bn_fc_fp130", "bn_fc_binary")

# %% [markdown]
# After every FC layer the fused block takes the argmax (before ReLU), picks the
# smallest right shift that brings the largest accumulator to 127 or below, and
# applies ReLU with a rounding shift.

# %%
show_c("bn_shiftnorm_relu")

# %% [markdown]
# ## Calling the kernels from Python
#
# We pack random weights of every type with `bitnetlib.deploy.packing.pack`, call `bn_fc`
# through cppyy, and compare the accumulators with numpy's matrix product of the
# unpacked integer weights.

# %%
n_in, n_out = 256, 64
# activations within each type's range (4p6 takes 0..16: its products fit int8)
acts = {wtype: rng.integers(0, TYPES[wtype].act_max + 1, n_in).astype(np.int8)
        for wtype in TYPE_IDS}
rows = []
for wtype in TYPE_IDS:
    act = acts[wtype]
    w = rng.choice(field_values(wtype), size=(n_out, n_in))
    packed = pack(w, wtype)
    acc_c = engine.fc(wtype, packed, act, n_in)
    acc_np = w @ act.astype(np.int64)
    rows.append(dict(type=wtype, per_word=per_word(wtype), words_per_row=packed.shape[1],
                     bytes=packed.nbytes, equal_to_numpy=bool((acc_c == acc_np).all())))
display(Markdown(bk.markdown_table(rows)))

# %%
all_equal = all(r["equal_to_numpy"] for r in rows)
print(f"C accumulators equal numpy's for all {len(rows)} types: {all_equal}")

# %% [markdown]
# The C kernels reproduce the integer matrix product exactly for every type; the
# packed size of one 64x256 layer ranges over the printed bytes column.
#
# The fused block called the same way, on one accumulator vector:

# %%
acc = (rng.normal(0, 3000, 16)).astype(np.int32)
out_c, shift_c, argmax_c = engine.shiftnorm_relu(acc)
out_py, shift_py = intmodel.shiftnorm_relu(acc[None].astype(np.int64))
print("accumulators:", acc.tolist())
print(f"C: shift {shift_c}, argmax {argmax_c}, out {out_c.tolist()}")
print(f"numpy integer model: shift {int(shift_py[0])}, equal: {bool((out_c == out_py[0]).all())}")

# %% [markdown]
# ## Operation counts per weight type
#
# Two views of the cost of each kernel on this machine: the machine instructions of
# the compiled kernel (x86-64, `gcc -O2`, counted with objdump, multiplies among
# them), and the measured time per weight of a 64x256 layer called through cppyy.
# The CH32V003's own cycle counts belong to the deployment chapter.

# %%
instr = bk.kernel_instructions()
timing = []
for wtype in TYPE_IDS:
    packed, act = pack(rng.choice(field_values(wtype), size=(n_out, n_in)), wtype), acts[wtype]
    engine.fc(wtype, packed, act, n_in)                  # warm up
    t0 = time.perf_counter()
    for _ in range(timing_repeats):
        engine.fc(wtype, packed, act, n_in)
    ns = 1e9 * (time.perf_counter() - t0) / timing_repeats / (n_in * n_out)
    k = instr[f"bn_fc_{wtype.lower()}"]
    timing.append(dict(type=wtype, instructions=k["instructions"], multiply_instructions=k["multiplies"],
                       ns_per_weight=ns))
display(Markdown(bk.markdown_table(timing)))

# %% mystnb={"figure": {"caption": "Time per weight of each FC kernel on this machine (64x256 layer, called through cppyy, including the call overhead).", "name": "fig-kernel-time"}}
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar([r["type"] for r in timing], [r["ns_per_weight"] for r in timing])
ax.set_ylabel("ns per weight (host CPU)")
plt.show()

# %%
fast = min(timing, key=lambda r: r["ns_per_weight"])
slow = max(timing, key=lambda r: r["ns_per_weight"])
print(f"fastest kernel here: {fast['type']} ({fast['ns_per_weight']:.2f} ns/weight); "
      f"slowest: {slow['type']} ({slow['ns_per_weight']:.2f} ns/weight)")

# %% [markdown]
# On a host CPU with a fast multiplier the multiply-free kernels have no advantage;
# the printed extremes show how the decoding work differs between types. Some
# multiply instructions in the x86 code of multiply-free kernels are address
# arithmetic chosen by the compiler; RV32EC has no multiply instruction at all.
#
# ## ShiftNorm against RMSNorm
#
# The float model normalizes each layer's input with RMSNorm and scales it so that the
# largest activation is exactly 127 (absmax). ShiftNorm divides by a power of two
# instead, so the largest activation lands somewhere in 64..127. We train the 4bitsym
# 64/64/64 model (cached) and look at the shifts and the resulting maxima on the
# 10,000 test images.

# %%
cfg = bk.resolve_config(common, "configs/fc_4bitsym_64x3_aug.yaml")
model, metrics = bk.run_cached(cfg)
display(Markdown(bk.profile_note(S)))
_, _, exp = export_run(bk.run_dir_of(cfg))
data = load_mnist(cfg.data_root or None)
x = intmodel.input_codes(data.test_x)
res = intmodel.run(exp, x)
shifts, maxima = [], []
for acc in res.trace[:-1]:                             # hidden FC layers
    a, s = intmodel.shiftnorm_relu(acc)
    shifts.append(s)
    maxima.append(a.max(axis=1))
print(f"test accuracy of the integer model: {100 * (res.pred == data.test_y.numpy()).mean():.2f} %")

# %% mystnb={"figure": {"caption": "Left: ShiftNorm's shift per hidden layer over the 10,000 test images. Right: the largest activation after ShiftNorm; absmax scaling would always give 127.", "name": "fig-shiftnorm"}}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for i, (s, m) in enumerate(zip(shifts, maxima)):
    vals, counts = np.unique(s, return_counts=True)
    axes[0].bar(vals + 0.25 * (i - 1), counts, width=0.25, label=f"layer {i + 1}")
    axes[1].hist(m, bins=np.arange(60, 130, 2), histtype="step", lw=1.5, label=f"layer {i + 1}")
axes[0].set_xlabel("shift s (divide by $2^s$)")
axes[0].set_ylabel("images")
axes[0].legend()
axes[1].set_xlabel("largest activation after ShiftNorm")
axes[1].legend()
fig.tight_layout()
plt.show()

# %%
scale_loss = [float(np.mean(np.log2(127 / np.maximum(m, 1)))) for m in maxima]
for i, (s, l) in enumerate(zip(shifts, scale_loss)):
    print(f"layer {i + 1}: shifts {s.min()}..{s.max()}, mean resolution lost vs absmax {l:.2f} bit")

# %% [markdown]
# ShiftNorm costs, per layer, the printed fraction of a bit of activation resolution
# compared with absmax scaling (at most one bit); this is the source of the few
# disagreements between the integer and the fake-quantized model that the next chapter
# counts.
#
# ## Provenance

# %%
bk.show_provenance(S)
