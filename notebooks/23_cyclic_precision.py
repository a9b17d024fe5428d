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
# # Cyclic precision training
#
# ## Overview
#
# Chapter 19 switched the weight type once during training. Cyclic precision training
# (CPT) {cite}`fu2021cpt`, studied in the switchable-precision report (shared/seeds/002),
# cycles the precision periodically: within each cycle it rises along a half cosine
# from the lowest to the highest precision, then drops back. The report's reading is
# that "exploration matters more than exploitation at low precision" and that
# "cycling provides escape mechanisms from bad local minima".
#
# The config keys `quant_cycle` (a list of types, lowest precision first) and
# `quant_cycle_period` (epochs per cycle) cycle the linear layers' type before
# `quant_switch_epoch`; from that epoch on they use the target `quant`, so every run
# ends at the same type (`bitnetlib.training.schedule.cycle_quant`). `act_cycle` cycles
# the linear layers' input activation bits the same way, as CPT does; every run ends
# with 8-bit activations, as the engine needs. The type changes only between epochs;
# the clip is re-chosen at every change, and the schedule is a pure function of the
# epoch, so a resumed run cycles the same way. We compare cycles of the weights below,
# above and around the 4bitsym target, of the activations, and of both, with constant
# 4bitsym and with a single switch at the same epoch. A last section cycles through
# real-valued bit widths, which fake quantization allows.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about 30 s on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 8, full 60)
period = None          # epochs per cycle; None: profile's value (smoke 3, full 6)
cycle_end = None       # 0-based epoch from which the target type is used; None: smoke 6, full 48
widths = None          # hidden widths; None: profile's (smoke [32, 32], full [64, 64, 64])
seeds = None           # None: profile's value (smoke [0], full [0, 1])
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
quant = "4bitsym"      # the target type
augment = None         # None: profile's value (smoke off, full on)
device = "auto"
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.training.fracbits import n_levels, quantizer_for
from bitnetlib.training.quant import get_quantizer
from bitnetlib.training.schedule import cycle_quant

S = bk.chapter(
    globals(),
    smoke=dict(epochs=8, period=3, cycle_end=6, widths=[32, 32], seeds=[0], train_subset=4000,
               augment=False, threads=1, compile=False),
    full=dict(epochs=60, period=6, cycle_end=48, widths=[64, 64, 64], seeds=[0, 1],
              train_subset=0, augment=True, threads=0, compile=True))
BASE = "configs/fc_4bitsym_64x3_aug.yaml"
common = dict(quant=quant, widths=S.widths, epochs=S.epochs, train_subset=S.train_subset,
              augment=S.augment, compile=S.compile, device=device)
switch = lambda q: {"start_quant": q, "quant_switch_epoch": S.cycle_end}
cycle = lambda *qs: {"quant_cycle": list(qs), "quant_cycle_period": S.period,
                     "quant_switch_epoch": S.cycle_end}
SCHEDULES = {
    f"constant {quant}": {},
    f"8bit, switch": switch("8bit"),
    f"2bitsym, switch": switch("2bitsym"),
    "cycle 2bitsym-4bitsym": cycle("2bitsym", "4bitsym"),
    "cycle 4bitsym-8bit": cycle("4bitsym", "8bit"),
    "cycle 2bitsym-4bitsym-8bit": cycle("2bitsym", "4bitsym", "8bit"),
    # CPT cycles the activations too (act_cycle: input bits of every linear layer)
    "cycle activations 4-8 bit": {"act_cycle": [4, 8], "quant_cycle_period": S.period,
                                  "quant_switch_epoch": S.cycle_end},
    "cycle 2bitsym-4bitsym, activations 4-8 bit": {**cycle("2bitsym", "4bitsym"),
                                                  "act_cycle": [4, 8]},
}

# %% [markdown]
# ## Training
#
# Every schedule with every seed; the switches and the cycles hand over to the target
# at the same epoch (`cycle_end`, counted from 1 in the figures).

# %%
grid = [{**s, "seed": seed} for s in SCHEDULES.values() for seed in S.seeds]
runs = bk.sweep(grid, base=BASE, common=common, desc="precision schedules")
by_name = {name: runs[i * len(S.seeds):(i + 1) * len(S.seeds)] for i, name in enumerate(SCHEDULES)}
mean = lambda rs, key: float(np.mean([r.last[key] for r in rs]))
display(Markdown(bk.profile_note(S)))
rows = [dict(schedule=name, seeds=len(rs), train_loss=mean(rs, "train_loss"),
             test_loss=mean(rs, "test_loss"), test_acc=mean(rs, "test_acc"))
        for name, rs in by_name.items()]
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Per epoch (first seed): the linear layers' bits per weight (left, each schedule shifted by a little so that overlapping ones stay visible), the training loss (middle) and the test accuracy (right) for each schedule; the dotted line is the epoch from which every schedule trains the target type.", "name": "fig-cycle-curves"}}
fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
for i, (name, rs) in enumerate(by_name.items()):
    ms = rs[0].metrics
    ep = [m["epoch"] for m in ms]
    offset = 0.12 * (i - len(by_name) / 2)          # keeps overlapping schedules visible
    axes[0].step(ep, [get_quantizer(m["layers"][0]["type"]).bits + offset for m in ms],
                 where="mid", label=name)
    axes[1].plot(ep, [m["train_loss"] for m in ms], "o-", ms=3)
    axes[2].plot(ep, [m["test_acc"] for m in ms], "o-", ms=3)
axes[0].set(xlabel="epoch", ylabel="bits per weight")
axes[1].set(xlabel="epoch", ylabel="train loss")
axes[2].set(xlabel="epoch", ylabel="test accuracy [%]")
for ax in axes:
    ax.axvline(S.cycle_end + 0.5, ls=":", color="k")
    ax.xaxis.get_major_locator().set_params(integer=True)
fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
fig.tight_layout(rect=(0, 0.13, 1, 1))
plt.show()

# %%
base = by_name[f"constant {quant}"]
for name, rs in list(by_name.items())[1:]:
    d_acc = mean(rs, "test_acc") - mean(base, "test_acc")
    d_loss = mean(rs, "train_loss") - mean(base, "train_loss")
    print(f"{name}: test accuracy {d_acc:+.2f} points, train loss {d_loss:+.4f} vs constant "
          f"{quant} (mean of {len(rs)} seed(s))")
best = max(by_name, key=lambda n: mean(by_name[n], "test_acc"))
print(f"highest final test accuracy: {best}")

# %% [markdown]
# Positive accuracy differences favour the schedule over constant 4bitsym. At `smoke`
# the runs are a few epochs on a subset, with one seed and only two cycles: the
# differences are of the size that a second seed moves, so they show that the
# schedules run, not which one is better.
#
# ## How far the cycles leave the network behind
#
# Each cyclic schedule's training loss against the constant run's in the same epoch:
# the gap opens in the low-precision epochs and has to close after the hand-over to
# the target type.

# %% mystnb={"figure": {"caption": "Training loss of each cyclic schedule minus that of constant 4bitsym, per epoch (first seed); the dotted line is the epoch from which every schedule trains the target type.", "name": "fig-cycle-gap"}}
fig, ax = plt.subplots(figsize=(7, 3.6))
ref = base[0].metrics
for i, name in enumerate(n for n in by_name if n.startswith("cycle")):
    ms = by_name[name][0].metrics
    ax.plot([m["epoch"] for m in ms], [m["train_loss"] - r["train_loss"] for m, r in zip(ms, ref)],
            "o-", ms=3, color=f"C{i + 3}", label=name)
ax.axhline(0, color="k", lw=0.8)
ax.axvline(S.cycle_end + 0.5, ls=":", color="k")
ax.set(xlabel="epoch", ylabel=f"train loss minus constant {quant}")
ax.xaxis.get_major_locator().set_params(integer=True)
ax.legend(fontsize=8)
plt.show()
for name in (n for n in by_name if n.startswith("cycle")):
    ms = by_name[name][0].metrics
    gap = ms[S.cycle_end]["train_loss"] - ref[S.cycle_end]["train_loss"]
    print(f"{name}: {gap:+.4f} train loss vs constant {quant} in the first target epoch "
          f"(epoch {S.cycle_end + 1}), {ms[-1]['train_loss'] - ref[-1]['train_loss']:+.4f} at the end")

# %% [markdown]
# ## Real-valued bit widths
#
# The report asks (section 6.2) why cyclic precision should keep to whole bit widths
# when the quantization is fake anyway: would real-valued widths (4.7, 5.3 bits) make
# CPT more powerful, and show what happens between 4 and 5 bits? It reports no
# measurement. Fake quantization needs a level count, not bits: a width of b bits here
# is a uniform grid of round(2^b) levels, symmetric about zero (odd counts include
# zero, even ones are half-integers; 2 and 4 bits are exactly 2bitsym and 4bitsym),
# written as a number in `quant_cycle` (`bitnetlib.training.fracbits`). The
# activations take real widths in `act_cycle` too, as an odd count of levels,
# 2((round(2^b) - 1) // 2) + 1 (whole widths keep their 2^b - 1). We cycle the weights
# from 2 to 4 bits in whole and in quarter-bit steps, and the activations from 4 to 8
# bits in whole and in half-bit steps, all handing over to 4bitsym at `cycle_end`.

# %%
frac = lambda key, widths: {key: [float(b) for b in widths], "quant_cycle_period": S.period,
                            "quant_switch_epoch": S.cycle_end}
FRACTIONAL = {
    "weights 2-4 bits, whole": frac("quant_cycle", [2, 3, 4]),
    "weights 2-4 bits, quarter steps": frac("quant_cycle", np.linspace(2, 4, 9)),
    "activations 4-8 bits, whole": frac("act_cycle", [4, 5, 6, 7, 8]),
    "activations 4-8 bits, half steps": frac("act_cycle", np.linspace(4, 8, 9)),
}
fgrid = [{**s, "seed": seed} for s in FRACTIONAL.values() for seed in S.seeds]
fruns = bk.sweep(fgrid, base=BASE, common=common, desc="real-valued widths")
f_by = {name: fruns[i * len(S.seeds):(i + 1) * len(S.seeds)] for i, name in enumerate(FRACTIONAL)}
f_by["cycle 2bitsym-4bitsym (types)"] = by_name["cycle 2bitsym-4bitsym"]
visited = lambda s: " ".join(f"{b:g}" for b in (cycle_quant(s.get("quant_cycle") or s["act_cycle"],
                                                           S.period, e) for e in range(S.period)))
frows = [dict(schedule=name, widths_in_a_cycle=visited(FRACTIONAL[name]) if name in FRACTIONAL else "2bitsym 4bitsym",
              test_acc=mean(rs, "test_acc"), vs_constant=mean(rs, "test_acc") - mean(base, "test_acc"),
              train_loss=mean(rs, "train_loss"))
         for name, rs in f_by.items()]
display(Markdown(bk.markdown_table(frows)))

# %% mystnb={"figure": {"caption": "Per epoch (first seed): the level count of the linear layers' weights (left, log scale, each schedule shifted up a little so that overlapping ones stay visible; the activation cycles keep 4bitsym) and the test accuracy (right) of the whole-step and fractional cycles and of constant 4bitsym; the dotted line is the epoch from which every schedule trains the target type.", "name": "fig-cycle-fractional"}}
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
for i, (name, rs) in enumerate([(f"constant {quant}", base), *f_by.items()]):
    ms = rs[0].metrics
    ep = [m["epoch"] for m in ms]
    a.step(ep, [quantizer_for(m["layers"][0]["type"]).n_levels * (1 + 0.03 * i) for m in ms],
           where="mid", label=name)
    b.plot(ep, [m["test_acc"] for m in ms], "o-", ms=3)
a.set(xlabel="epoch", ylabel="weight levels", yscale="log")
a.set_yticks([4, 6, 8, 11, 16], ["4", "6", "8", "11", "16"])
a.minorticks_off()
b.set(xlabel="epoch", ylabel="test accuracy [%]")
for ax in (a, b):
    ax.axvline(S.cycle_end + 0.5, ls=":", color="k")
    ax.xaxis.get_major_locator().set_params(integer=True)
fig.legend(*a.get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
fig.tight_layout(rect=(0, 0.12, 1, 1))
plt.show()

# %% tags=["remove-input"]
d_w = mean(f_by["weights 2-4 bits, quarter steps"], "test_acc") - mean(f_by["weights 2-4 bits, whole"], "test_acc")
same_act = visited(FRACTIONAL["activations 4-8 bits, whole"]) == \
    visited(FRACTIONAL["activations 4-8 bits, half steps"])
d_a = mean(f_by["activations 4-8 bits, half steps"], "test_acc") - mean(f_by["activations 4-8 bits, whole"], "test_acc")
display(Markdown(
    f"Fractional against whole steps: {d_w:+.2f} points for the weight cycle, {d_a:+.2f} for "
    f"the activation cycle (mean of {len(S.seeds)} seed(s), profile `{S.profile}`). The type "
    f"changes only between epochs, so a cycle of {S.period} epochs visits {S.period} widths "
    f"whatever the list: finer steps change which widths are visited (see the table), not "
    f"how many" + ("; here the two activation cycles visit the same widths, so their runs "
                   "are the same." if same_act else ".")))

# %% [markdown]
# ## Switchable precision: one set of weights for several types
#
# The report's other technique trains one set of weights for several bit widths at
# once, the narrower widths distilled from the widest (KL on the logits plus a feature
# loss), and finds each width close to a separately trained model. Here every batch runs
# 8bit, 4bitsym and 2bitsym on the same weights (`switch_types`, feature weight 1:
# `bitnetlib.training.switchable`), against the constant runs of each type; then the
# type is drawn at random for every test batch of 100 images, as a device that switches
# precision on the fly would.

# %%
SW_TYPES = ["2bitsym", "4bitsym", "8bit"]
sw_cfgs = [bk.resolve_config({**common, "switch_types": SW_TYPES, "switch_feature_weight": 1.0,
                              "seed": seed}, BASE) for seed in S.seeds]
alone = {q: [bk.resolve_config({**common, "quant": q, "seed": seed}, BASE) for seed in S.seeds]
         for q in SW_TYPES}
bk.require([*sw_cfgs, *(c for cs in alone.values() for c in cs)])
sw_runs = [bk.run_cached(c) for c in sw_cfgs]
sw_rows = [dict(type=q,
                shared_weights=float(np.mean([m[-1]["switch_test_acc"][q] for _, m in sw_runs])),
                trained_alone=float(np.mean([bk.run_cached(c)[1][-1]["test_acc"] for c in alone[q]])))
           for q in SW_TYPES]
for r in sw_rows:
    r["difference"] = r["shared_weights"] - r["trained_alone"]
display(Markdown(bk.markdown_table(sw_rows)))

# %%
from bitnetlib.training.schedule import set_linear_quant
from bitnetlib.training.train import evaluate

data = bk.cached_data(sw_cfgs[0])
gen = np.random.default_rng(0)


def random_type_accuracy(model, batch=100):
    """Test accuracy with the weight type drawn at random for every batch."""
    correct = 0
    for i in range(0, len(data.test_y), batch):
        set_linear_quant(model, SW_TYPES[gen.integers(len(SW_TYPES))])
        correct += evaluate(model, data.test_x[i:i + batch], data.test_y[i:i + batch])[1] * \
            len(data.test_y[i:i + batch]) / 100
    set_linear_quant(model, quant)
    return 100 * correct / len(data.test_y)


random_acc = [random_type_accuracy(model) for model, _ in sw_runs]

# %% tags=["remove-input"]
display(Markdown(
    f"With the type drawn at random per batch the shared weights reach "
    f"{np.mean(random_acc):.2f} % (mean of {len(random_acc)} seed(s)), against "
    f"{min(r['shared_weights'] for r in sw_rows):.2f} to "
    f"{max(r['shared_weights'] for r in sw_rows):.2f} % at a fixed type; the largest loss "
    f"against a separately trained "
    f"model is {min(r['difference'] for r in sw_rows):+.2f} points "
    f"({min(sw_rows, key=lambda r: r['difference'])['type']}; profile `{S.profile}`)."))

# %% [markdown]
# ## Provenance

# %%
bk.show_provenance(S)
