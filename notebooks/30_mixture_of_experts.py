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
# # A small mixture of experts
#
# ## Overview
#
# The research plan (shared/seeds/000, "Mixture-of-Experts") has one line on it: "Use
# routing mechanism to reduce the number of depth-wise conv2d to extract features". The
# expectation behind it is the usual one for a mixture of experts: a router picks, per
# input, one of several sub-networks, so that each inference computes only a part of
# the weights the model stores. On the CH32V003 the weights live in flash (16 KB) and
# the time goes into the FC kernels, so the trade is: at the same flash bytes, fewer
# cycles per image, if the accuracy holds. This chapter tests that on the FC model
# (the CNN's routing the plan names is left for later) and measures, instead of
# guessing, what the routing costs on the chip.
#
# The design (`model: fc_moe`, `bitnetlib.training.moe`) is what an embedded engineer
# would deploy: every piece is an ordinary FC network of the engine, in the same
# weight type (4bitsym, the headline's) — an optional shared first layer (the
# *trunk*, 256 -> T), a *gate* (here one layer T -> E) whose argmax chooses the
# expert, and E *experts* (T -> w -> 10). At inference only the chosen expert runs
# (top-1). Training routes the same way (hard argmax with Gumbel noise forward, the
# softmax's gradient backward) with a load-balancing loss (weight `moe_balance`). The
# C engine runs it with `bn_run_moe` (c_engine/bn_moe.c: `bn_run_network` for the trunk,
# the gate and the one expert), bit for bit the integer model
# (`bitnetlib.deploy.moe.run_moe`), and the firmware runs it in the emulated CH32V003,
# which splits every round into the parts below.
#
# The designs are sized to the headline 4bitsym 64/64/64 model's packed weight bytes
# (about 12.3 KB): for each number of experts the widest expert that fits
# (`bitnetlib.book.moe.expert_width`). Each is compared with the dense headline model
# (same bytes) and with a dense network of its *active path* (trunk + one expert:
# the same computation per image, 1/E of the expert bytes).
#
# The MoE's routing cost on the MCU is measured, not estimated: the firmware runs the
# whole mixture (`bn_run_moe`) and the emulator splits each round at the networks'
# entries.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": a few minutes on a CPU; "full": the write-up's recipe
epochs = None          # None: profile's value (smoke 2, full 60)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
augment = None         # None: profile's value (smoke off, full on)
experts = [2, 4, 8]    # numbers of experts, each design at the headline's bytes
trunk = 32             # width of the shared first layer the gate and experts read
raw_gate = [8]         # a design without trunk: gate 256 -> 8 -> 2 on the pixels (None: none)
raw_experts = 2        # its number of experts
balance = 0.3          # weight of the load-balancing loss
mcu_images = None      # test images in the emulated firmware; None: profile's (3 / 100)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-output"]
import matplotlib.pyplot as plt
from matplotlib.patches import Patch
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.book.moe import expert_width, moe_bytes, moe_check_cached, moe_mcu_cached
from bitnetlib.deploy import firmware
from bitnetlib.deploy.model import fc_weight_bytes
from bitnetlib.pipeline import DEPLOY_ERRORS

S, common = bk.headline_settings(globals(), smoke=dict(mcu_images=3), full=dict(mcu_images=100))
BASE = "configs/fc_4bitsym_64x3_aug.yaml"
Q = "4bitsym"
budget = fc_weight_bytes([256, 64, 64, 64, 10], [Q] * 4)
designs = {}                     # name -> (moe config overrides, active-path dense widths)
for E in experts:
    w = expert_width(budget, E, [], trunk, Q)
    designs[f"{E} experts, trunk {trunk}"] = (
        dict(model="fc_moe", widths=[w], moe_experts=E, moe_gate_widths=[], moe_trunk=trunk,
             moe_balance=balance), [trunk, w])
if raw_gate is not None:
    w = expert_width(budget, raw_experts, raw_gate, 0, Q)
    designs[f"{raw_experts} experts, gate on pixels"] = (
        dict(model="fc_moe", widths=[w], moe_experts=raw_experts, moe_gate_widths=list(raw_gate),
             moe_trunk=0, moe_balance=balance), [w])
moe_cfgs = {n: bk.resolve_config({**common, **o}, BASE) for n, (o, _) in designs.items()}
dense_cfgs = {"dense 64/64/64": bk.resolve_config({**common, "quant": Q}, BASE)}
dense_cfgs.update({f"dense {'/'.join(map(str, a))} (active path)": bk.resolve_config(
    {**common, "widths": a}, BASE) for _, a in designs.values()})
bk.require([*moe_cfgs.values(), *dense_cfgs.values()])

# %% [markdown]
# ## The designs
#
# Packed weight bytes (rows layout) of every design, computed before training and
# checked against the exported networks below; the active-path models are the dense
# networks of the same per-image computation.

# %%
rows = [dict(model=n, trunk=o["moe_trunk"] or "-", gate=" -> ".join(
             map(str, [o["moe_trunk"] or 256, *o["moe_gate_widths"], o["moe_experts"]])),
             expert=f"{o['moe_trunk'] or 256} -> {o['widths'][0]} -> 10",
             bytes=moe_bytes(o["moe_experts"], o["moe_gate_widths"], o["widths"],
                             o["moe_trunk"], Q)) for n, (o, _) in designs.items()]
rows += [dict(model=n, trunk="-", gate="-", expert="/".join(map(str, c.widths)),
              bytes=fc_weight_bytes([256, *c.widths, 10], [Q] * (len(c.widths) + 1)))
         for n, c in dense_cfgs.items()]
display(Markdown(bk.markdown_table(rows)))

# %% [markdown]
# ## Training and checks
#
# Every model is trained with the recipe of `configs/fc_4bitsym_64x3_aug.yaml`
# (the dense 64/64/64 is chapter 14's run). For each mixture, all 10,000 test images go
# through the fake-quantized model, the integer model and the C engine
# (`bn_run_moe`): the C engine must agree with the integer model on every logit and
# every expert choice.

# %%
moe_runs = bk.sweep([o for o, _ in designs.values()], base=BASE, common=common, desc="moe")
dense_runs = bk.sweep([{"quant": Q}] + [{"widths": a} for _, a in designs.values()],
                      base=BASE, common=common, desc="dense")
display(Markdown(bk.profile_note(S)))
checks = {n: moe_check_cached(c) for n, c in moe_cfgs.items()}
for n, (o, _) in designs.items():          # the design's bytes are the exported bytes
    assert checks[n]["weight_bytes"] == moe_bytes(o["moe_experts"], o["moe_gate_widths"],
                                                  o["widths"], o["moe_trunk"], Q), n
rows = [dict(model=n, bytes=checks[n]["weight_bytes"], test_acc=r.last["test_acc"],
             int_acc=checks[n]["acc_int"], c_vs_int_mismatches=checks[n]["mismatch_c_int"],
             routing_float_vs_int=checks[n]["route_differs_float_int"])
        for n, r in zip(designs, moe_runs)]
rows += [dict(model=n, bytes=fc_weight_bytes([256, *r.cfg.widths, 10], [Q] * (len(r.cfg.widths) + 1)),
              test_acc=r.last["test_acc"]) for n, r in zip(dense_cfgs, dense_runs)]
display(Markdown(bk.markdown_table(rows)))

# %% tags=["remove-input"]
head = dense_runs[0].last["test_acc"]
best = max(zip(designs, moe_runs), key=lambda t: t[1].last["test_acc"])
display(Markdown(
    f"At {budget} bytes the dense 64/64/64 model reaches {head:.2f}%; the best mixture, "
    f"{best[0]}, {best[1].last['test_acc']:.2f}% ({best[1].last['test_acc'] - head:+.2f} "
    f"points). The C engine and the integer model disagree on "
    f"{sum(c['mismatch_c_int'] for c in checks.values())} logits or expert choices over all "
    f"mixtures and test images."))

# %% [markdown]
# ## Expert load
#
# The share of the test images the integer model routes to each expert. A balanced
# mixture has 1/E everywhere; an expert with no images is bytes in flash that never run.

# %% mystnb={"figure": {"caption": "Share of the 10,000 test images routed to each expert (integer model), one group of bars per design; the dashed line marks a balanced 1/E.", "name": "fig-moe-load"}}
fig, axes = plt.subplots(1, len(designs), figsize=(2.6 * len(designs) + 1, 2.8), sharey=True,
                         squeeze=False)
for ax, n in zip(axes[0], designs):
    load = checks[n]["load_int"]
    ax.bar(range(len(load)), load, color="C0")
    ax.axhline(1 / len(load), color="k", ls="--", lw=0.8)
    ax.set(title=n, xlabel="expert", xticks=range(len(load)))
    ax.title.set_fontsize(8)
axes[0][0].set_ylabel("share of test images")
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
unused = {n: sum(v < 0.01 for v in c["load_int"]) for n, c in checks.items()}
display(Markdown(
    "Largest expert share per design: " + ", ".join(
        f"{n}: {max(c['load_int']):.2f} (balanced {1 / len(c['load_int']):.2f}; "
        f"{unused[n]} expert(s) under 1%)" for n, c in checks.items()) + "."))

# %% [markdown]
# ## Cycles on the CH32V003
#
# The firmware (fast kernels, `MOE=1`: `bn_run_moe` in firmware/main.c) runs the first
# test images in the emulator; every image is checked against the host engine
# (prediction, logits, expert). The emulator notes the cycle count at each entry of
# `bn_run_network`, which splits a round into *checks* (the firmware loop and
# `bn_run_moe`'s checks of how its networks fit together), *trunk* (with the ShiftNorm
# of its output), *gate* and *expert*
# (cycles are the cycle model's estimates, chapter 15). The dense models run in the same
# firmware without `MOE` (`bk.mcu_cached`). The mixtures' layout for the fast kernels
# (`bitnetlib.deploy.moe.firmware_layout`) is the cols layout except where a layer's
# columns pad to more bytes than its rows (an expert's output layer: 10 weights per
# column fill 16 fields), and only a network that reads the image stores the centring
# sums. As in chapter 15, a build that does not fit 2 KB of SRAM with the hot kernels
# in SRAM keeps them in flash (slower: `hot_code`), and one that does not fit at all is
# measured on a virtual chip with more SRAM and flash (`fits` False).

# %%
def emulated(fn, cfg) -> dict:
    if not firmware.have_toolchain():
        return dict(why="no RISC-V toolchain")
    try:
        return fn(cfg)
    except DEPLOY_ERRORS as e:
        return dict(why=f"{type(e).__name__}: {str(e).splitlines()[0][:60]}")


mcu = {n: emulated(lambda c: moe_mcu_cached(c, S.mcu_images), c) for n, c in moe_cfgs.items()}
mcu_dense = {n: emulated(lambda c: bk.mcu_cached(c, kernel="fast", images=S.mcu_images), c)
             for n, c in dense_cfgs.items()}
rows = []
cyc = lambda v: f"{round(v):,}" if isinstance(v, (int, float)) else v   # mean cycles, whole
for n, r in {**mcu, **mcu_dense}.items():
    parts = r.get("part_cycles_mean", {})
    rows.append(dict(model=n, cycles=cyc(r.get("cycles_mean") or r.get("why")),
                     checks=cyc(parts.get("before", "")), trunk=cyc(parts.get("trunk", "")),
                     gate=cyc(parts.get("gate", "")), expert=cyc(parts.get("expert", "")),
                     flash=r.get("flash_bytes", ""), sram=r.get("ram_bytes", ""),
                     hot_code=r.get("hot_code", ""), fits=r.get("fits_ch32v003", ""),
                     mismatches=r.get("mismatch_vs_host", "")))
display(Markdown(bk.markdown_table(rows)))

# %% mystnb={"figure": {"caption": "Emulated cycles per image (mean over the first test images, fast kernels): each mixture split into checks, trunk, gate and the chosen expert, beside the dense 64/64/64 model of the same bytes and the dense active-path models.", "name": "fig-moe-cycles"}}
fig, ax = plt.subplots(figsize=(8, 3.6))
COLORS = dict(before=("0.6", "checks"), trunk=("C2", "trunk"), gate=("C3", "gate"),
              expert=("C0", "expert"), dense=("C7", "dense network"))
names = [n for n in [*mcu, *mcu_dense] if {**mcu, **mcu_dense}[n].get("cycles_mean")]
for i, n in enumerate(names):
    r = {**mcu, **mcu_dense}[n]
    left = 0
    for k, v in (r.get("part_cycles_mean") or {"dense": r["cycles_mean"]}).items():
        ax.barh(i, v, left=left, color=COLORS[k][0])
        left += v
ax.set(yticks=range(len(names)), yticklabels=names, xlabel="cycles per image (model estimate)")
ax.legend(handles=[Patch(color=c, label=l) for c, l in COLORS.values()], fontsize=7)
ax.invert_yaxis()
plt.show()

# %% tags=["remove-input"]
dense_c = mcu_dense["dense 64/64/64"].get("cycles_mean")
lines = []
for n, r in mcu.items():
    if not r.get("cycles_mean"):
        continue
    p = r["part_cycles_mean"]
    routing = p["before"] + p["gate"]
    lines.append(f"{n}: {r['cycles_mean']:.0f} cycles ({r['cycles_mean'] / dense_c:.2f} x the "
                 f"dense model's {dense_c:.0f}), of which routing (checks + gate) "
                 f"{routing:.0f} ({100 * routing / r['cycles_mean']:.0f}%)" if dense_c else n)
over = [f"{n} (flash {r['flash_bytes']} bytes)" for n, r in mcu.items()
        if r.get("cycles_mean") and not r["fits_ch32v003"]]
display(Markdown(("; ".join(lines) + "." if lines else "No emulated cycles (see the table).")
                 + (f" Not fitting the CH32V003 (16,384 bytes of flash, 2,048 of SRAM), measured "
                    f"on the virtual chip: {', '.join(over)}." if over else "")))

# %% [markdown]
# ## Accuracy against cycles
#
# Bytes decide whether a model fits the flash; cycles decide its latency and energy. The
# mixtures store the headline's bytes but compute like their active path.

# %% mystnb={"figure": {"caption": "Test accuracy (fake-quantized model) against emulated cycles per image: the mixtures at the headline's bytes (circles), their dense active-path models (squares) and the dense 64/64/64 (star).", "name": "fig-moe-acc-cycles"}}
fig, ax = plt.subplots(figsize=(7, 4))
for n, r in zip(designs, moe_runs):
    if mcu[n].get("cycles_mean"):
        ax.scatter(mcu[n]["cycles_mean"], r.last["test_acc"], color="C0", zorder=3)
        ax.annotate(n, (mcu[n]["cycles_mean"], r.last["test_acc"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
for n, r in zip(dense_cfgs, dense_runs):
    if mcu_dense[n].get("cycles_mean"):
        ax.scatter(mcu_dense[n]["cycles_mean"], r.last["test_acc"], color="C7",
                   marker="*" if n == "dense 64/64/64" else "s", s=80 if n == "dense 64/64/64" else 30)
        ax.annotate(n, (mcu_dense[n]["cycles_mean"], r.last["test_acc"]), fontsize=7,
                    xytext=(4, -9), textcoords="offset points", color="0.3")
ax.set(xscale="log", xlabel="cycles per image (model estimate)", ylabel="test accuracy [%]")
plt.show()

# %% tags=["remove-input"]
pairs = [(n, r.last["test_acc"], d.last["test_acc"])
         for n, r, d in zip(designs, moe_runs, dense_runs[1:])]
display(Markdown(
    "Against its active path (the same computation per image, dense): " + ", ".join(
        f"{n} {a:.2f}% vs {b:.2f}% ({a - b:+.2f})" for n, a, b in pairs) + "."))

# %% [markdown]
# Reading: the plan expected routing to save computation. A mixture's round costs its
# checks, trunk, gate and one expert, so it saves cycles only where that active path
# is cheaper than the dense model of the same bytes: with few experts each expert is
# nearly as large as the dense layers it replaces, with many it is small (the table and
# the bars give the measured cycles, the same firmware and cycle model for all). Whether
# the saved cycles cost accuracy is read from the `full` runs against both dense
# baselines: the dense 64/64/64 (same bytes) and the active path (same computation per
# image, fewer bytes); at `smoke` (two epochs on a subset) the accuracies only show that
# the pipeline runs end to end. Routing itself is cheap when the gate reads the trunk's
# features (a 32 -> E layer), and costs a full pass over the pixels when it reads the
# image (the "gate on pixels" design). `bn_run_moe` checks on every call how the
# networks fit together (a loop over the experts: *checks*); each network's own checks
# run inside `bn_run_network`, for the networks that run. Hot kernels in flash (the
# `hot_code` column: SRAM too short for them beside a wide expert's buffers) cost
# cycles of their own, as in chapter 15. Equal weight bytes are not equal flash: a
# mixture also carries `bn_run_moe` and, with its experts' output layers in rows, the
# kernels of both layouts, so a design at the dense model's weight bytes can miss the
# 16 KB by a few hundred bytes (the `flash` column).
#
# ## Provenance

# %%
bk.show_provenance(S)
