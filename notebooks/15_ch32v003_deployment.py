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
# # Deployment on the CH32V003
#
# ## Overview
#
# The write-up's target is the WCH CH32V003: a QingKe V2A core (RV32EC: 16 registers,
# compressed instructions, no multiplier) at 48 MHz, 16 KB of flash and 2 KB of SRAM.
# It runs its 4bitsym 256-64-64-64-10 network in 13.66 ms, about 650,000 cycles.
#
# Nobody here has the board, so the firmware is built for real and run in an
# instruction-set simulator (`bitnetlib.pipeline.mcu_run`):
#
# firmware
# : `firmware/`: our own start-up code and linker script (no vendor SDK), the C engine
#   compiled from `c_engine/` and the exported model header, built by Debian's
#   `riscv64-unknown-elf-gcc` for `rv32ec`/`ilp32e`. The build fails with a message
#   when code and weights exceed 16 KB of flash or data and stack exceed 2 KB of SRAM.
#
# emulator
# : Unicorn runs the ELF with the chip's memory map. At the firmware's one host hook
#   the harness writes the next test image and reads the last result; every layer's
#   accumulators are compared with the host C engine. A block hook counts executed
#   instructions by class and rejects any instruction outside RV32EC (`mul`, registers
#   above x15).
#
# cycle model
# : ALU 1 cycle, load/store 2, taken branch or jump 3, plus one wait state per data
#   read from flash and per 32-bit instruction fetched from flash, two per taken branch
#   in flash code (`../shared/mcu-measurement.md`, checked there against the write-up's
#   timings to within a few percent). Cycle counts are estimates from this model;
#   instruction counts are exact for the emulator.
#
# Two kernel sets are compared. `baseline` is the write-up's approach: weights row by
# row, a bit test per weight, inputs equal to zero skipped. `fast` stores weights by
# column, skips inputs equal to the background, builds a table of the input's
# products with each of the 16 weight codes and adds from it without multiplying; its
# 4-bit inner loop is RV32EC assembly (`c_engine/bn_kernels_rv32e.S`, details in
# `firmware/README.md` and {doc}`13_inference_engine`). As in the write-up's demo, whose
# test images are constant arrays, the image is read from flash: copied to SRAM, its
# 256 bytes would push the fast 4-bit build over the 2 KB (see `firmware/README.md`).

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 2, full 60)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
augment = None         # None: profile's value (smoke off, full on)
types = ["4bitsym", "FP130", "2bitsym", "Ternary", "Binary", "NF4", "8bit"]  # on 256-64-64-64-10
kernels = ["baseline", "fast"]
cnn_config = None      # None: profile's CNN (smoke configs/cnn16.yaml, full configs/cnn64.yaml); "": none
mcu_images = None      # test images per emulated run; None: profile's value (smoke 3, full 100)
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-input", "hide-output"]
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.deploy import cycles
from bitnetlib.deploy import firmware
from bitnetlib.wtypes import COLS_TYPES

S, common = bk.headline_settings(globals())
n_images = mcu_images or (3 if S.profile == "smoke" else 100)
if not firmware.have_toolchain():
    raise RuntimeError("this chapter needs riscv64-unknown-elf-gcc: run `make toolchain`")

# %% [markdown]
# ## The models
#
# The FC network of the write-up in several weight types (the same cached runs as
# {doc}`14_export_and_verification`), the write-up's 1 KB 2bitsym network
# (256-16-16-10) and the CNN of {doc}`16_cnn` (16 channels at `smoke`, 64 at `full`).

# %% tags=["hide-input"]
models = {f"FC {q} 64/64/64": bk.resolve_config({**common, "quant": q},
                                                 "configs/fc_4bitsym_64x3_aug.yaml")
          for q in types}
models["FC 2bitsym 1 KB"] = bk.resolve_config(common, "configs/fc1k_2bitsym.yaml")
if cnn_config is None:
    cnn_config = bk.HEADLINE_MODELS["CNN 64"][0 if S.profile == "full" else 1]
if cnn_config:
    models[f"CNN ({cnn_config})"] = bk.resolve_config(common, cnn_config)
bk.require(models.values())
accuracy = {name: bk.run_cached(cfg)[1][-1]["test_acc"] for name, cfg in models.items()}
display(Markdown(bk.profile_note(S)))

# %% [markdown]
# ## Building and running the firmware
#
# For each model and kernel set: export the header in the kernel's layout, build the
# firmware, run `n_images` test images in the emulator with every layer checked
# against the host engine, and count cycles. A model that does not fit is reported
# with the build's message; one whose only problem is SRAM is measured anyway on an
# emulated chip with more SRAM and marked as not fitting. Results are cached in the
# run directory, keyed by the sources of the engine, the firmware and the harness.


# %% tags=["hide-input"]
SLOW_TIMED = 10     # the baseline CNN and NF4 and the 8bit rounds (row kernels,
                    # __mulsi3) run 9-60M cycles: cycles counted on this many images
                    # (every image is still checked against the host)


def emulate(cfg, kernel):
    """mcu_run's result dict, or {'why': first line of the reason} when it cannot run."""
    slow = (kernel == "baseline" and (cfg.model == "cnn" or cfg.quant == "NF4")) \
        or cfg.quant == "8bit"
    return bk.emulated(cfg, kernel=kernel, images=n_images,
                       timed=min(SLOW_TIMED, n_images) if slow else None)


results = {(name, k): emulate(cfg, k) for name, cfg in models.items() for k in kernels}


def fits(r) -> str:
    over = [what for what, too_big in [("flash", r["flash_bytes"] > firmware.FLASH_LIMIT),
                                       ("SRAM", r["ram_bytes"] > firmware.RAM_LIMIT)] if too_big]
    return "yes" if r["fits_ch32v003"] else f"**no** ({', '.join(over) or 'see build'})"


def speed_row(name, kernel, r):
    row = {"model": name, "kernel": kernel}
    if "why" in r:
        return {**row, "cycles": f"not built: {r['why'][:60]}"}
    return {**row, "cycles": f"{r['cycles_mean']:,.0f}", "ms at 48 MHz": f"{r['ms_at_48mhz']:.2f}",
            "fits": fits(r), "mismatches": r["mismatch_vs_host"]}


def memory_row(name, kernel, r):
    if "why" in r:
        return {"model": name, "kernel": kernel, "flash B": "not built"}
    return {"model": name, "kernel": kernel, "accuracy %": f"{accuracy[name]:.2f}",
            "flash B": f"{r['flash_bytes']:,}", "weights B": f"{r['weight_bytes']:,}",
            "SRAM B": f"{r['ram_bytes']:,}", "instructions": f"{r['instructions_mean']:,.0f}"}


display(Markdown(bk.markdown_table([speed_row(n, k, r) for (n, k), r in results.items()])))
display(Markdown("Memory, instructions and the training run's accuracy of the same builds:\n\n"
                 + bk.markdown_table([memory_row(n, k, r) for (n, k), r in results.items()])))

# %% tags=["hide-input"]
ok = {key: r for key, r in results.items() if "why" not in r}
print(f"{len(ok)} of {len(results)} model/kernel pairs ran; firmware vs host engine "
      f"mismatches (prediction or any layer's accumulators) over {n_images} images each: "
      f"{sum(r['mismatch_vs_host'] for r in ok.values())}")
print("instructions outside RV32EC:", "none" if all(r["rv32ec_only"] for r in ok.values())
      else "FOUND")
for (name, k), r in results.items():
    if "why" in r:
        print(f"{name}, {k}: {r['why']}")

# %% [markdown]
# ## Flash and SRAM
#
# What each firmware image uses of the chip: flash split into packed weights and
# everything else (code, constants, start-up), SRAM into static data (activation
# buffers, product tables) and the measured stack peak (the stack is filled with a
# pattern before the run and scanned after it).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Flash (left) and SRAM (right) used by each firmware image, fast kernels where they ran, else baseline; the dashed lines are the CH32V003's 16 KB and 2 KB.", "name": "fig-memory"}}
def memory_of(name):
    return ok.get((name, "fast")) or ok.get((name, "baseline"))


shown = [n for n in models if memory_of(n)]
fig, (axf, axr) = plt.subplots(1, 2, figsize=(10, 0.45 * len(shown) + 1.2), sharey=True)
ys = np.arange(len(shown))
w = np.array([memory_of(n)["weight_bytes"] for n in shown])
axf.barh(ys, w, label="packed weights")
axf.barh(ys, [memory_of(n)["flash_bytes"] for n in shown] - w, left=w, label="code and rest")
axf.axvline(firmware.FLASH_LIMIT, ls="--", c="k")
axf.set_xlabel("flash bytes")
s = np.array([memory_of(n)["ram_static"] for n in shown])
axr.barh(ys, s, label="static data")
axr.barh(ys, [memory_of(n)["stack_bytes"] for n in shown], left=s, label="stack peak")
axr.axvline(firmware.RAM_LIMIT, ls="--", c="k")
axr.set_xlabel("SRAM bytes")
axf.set_yticks(ys, shown)
axf.legend(fontsize=8, loc="lower right")
axr.legend(fontsize=8, loc="lower right")
plt.show()

# %% tags=["hide-input"]
over_flash = sorted({n for (n, k), r in results.items() if "flash overflow" in r.get("why", "")}
                    | {n for (n, k), r in ok.items() if r["flash_bytes"] > firmware.FLASH_LIMIT})
over_ram = sorted({n for (n, k), r in ok.items() if r["ram_bytes"] > firmware.RAM_LIMIT})
print("need more than 16 KB of flash:", over_flash or "none")
print("need more than 2 KB of SRAM:", over_ram or "none")
print("(models that do not fit are measured on an emulated chip with more memory)")

# %% [markdown]
# The printed lists name the models the chip cannot hold. The 8bit FC network has
# twice the 4-bit weights and cannot fit 16 KB of flash. The write-up's CNN needed more
# than 2 KB of SRAM for its feature maps and moved to the CH32V002 (4 KB); our engine
# runs the conv layers one channel at a time ({doc}`16_cnn`), which is what decides
# whether the CNN row above fits.
#
# ## Cycles per inference
#
# Mean model cycles per image, both kernel sets, beside the times the write-up measured
# on the board (`bitnetlib.book.WRITEUP`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Estimated cycles per inference in the emulated CH32V003 by model and kernel set (log scale); dotted lines are the write-up's measured times (13.66 ms for the 4bitsym network, the lower end of its range for FP130 and the 1 KB network) converted at 48 MHz.", "name": "fig-cycles"}}
names = [n for n in models if any((n, k) in ok for k in kernels)]
fig, ax = plt.subplots(figsize=(9, 3.6))
xs = np.arange(len(names))
for j, k in enumerate(kernels):
    ax.bar(xs + 0.8 * (j - (len(kernels) - 1) / 2) / len(kernels),
           [ok[(n, k)]["cycles_mean"] if (n, k) in ok else 0 for n in names],
           width=0.8 / len(kernels), label=k)
measured = [i for i, n in enumerate(names) if bk.WRITEUP.get(n, {}).get("ms")]
for i in measured:                              # the write-up's measured times, where given
    lo = bk.WRITEUP[names[i]]["ms"][0] * cycles.CH32V003.mhz * 1000
    ax.plot([i - 0.4, i + 0.4], [lo, lo], "k:", label="write-up (measured)" if i == measured[0] else None)
ax.set_yscale("log")
ax.set_ylabel("cycles per inference")
ax.set_xticks(xs, names, rotation=20, ha="right", fontsize=8)
ax.legend(fontsize=8)
plt.show()

# %% tags=["hide-input"]
speedups = {n: ok[(n, "baseline")]["cycles_mean"] / ok[(n, "fast")]["cycles_mean"]
            for n in names if (n, "baseline") in ok and (n, "fast") in ok}
display(Markdown(bk.markdown_table([
    {"model": n, "baseline cycles": f"{ok[(n, 'baseline')]['cycles_mean']:,.0f}",
     "fast cycles": f"{ok[(n, 'fast')]['cycles_mean']:,.0f}", "speed-up": f"{x:.1f}x",
     "fast fits": fits(ok[(n, "fast")])} for n, x in speedups.items()])))
print("types without a column-major kernel (their fast build uses the row kernels):",
      [q for q in types if q not in COLS_TYPES] or "none")
fc_fast = {n: x for n, x in speedups.items()
           if n.endswith(" 64/64/64") and n.split()[1] in COLS_TYPES}
if fc_fast:
    slowest = min(fc_fast, key=fc_fast.get)
    print(f"weight types with column kernels on the 64/64/64 network: {len(fc_fast)}, each at "
          f"least {fc_fast[slowest]:.1f}x faster than its baseline (the least: {slowest})")
for n in names:
    if bk.WRITEUP.get(n, {}).get("ms") and (n, "baseline") in ok:
        lo, hi = bk.WRITEUP[n]["ms"]
        ms = ok[(n, "baseline")]["ms_at_48mhz"]
        print(f"{n}, baseline: {ms:.2f} ms, {100 * (ms / lo - 1):+.0f} % against the "
              f"write-up's {lo}" + (f"-{hi}" if hi != lo else "") + " ms")

# %% [markdown]
# The speed-ups are the gain of the column-major, table-driven kernels over the
# write-up's row-by-row approach on the same images. The number of cycles depends on
# the images: both kernel sets skip zero inputs, so a sparser activation pattern runs
# faster, and at `smoke` the barely trained models have different sparsity from the
# trained ones.
#
# ## Where the cycles go
#
# The cycle model's terms for the 4bitsym network: instructions by class times their
# cost, and the wait states of flash accesses.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Cycles per inference of the 4bitsym 64/64/64 network split into the cycle model's terms, for each kernel set.", "name": "fig-cycle-terms"}}
terms = {k: cycles.CH32V003.terms(ok[("FC 4bitsym 64/64/64", k)]["by_class_mean"])
         for k in kernels if ("FC 4bitsym 64/64/64", k) in ok}
fig, ax = plt.subplots(figsize=(7, 2.2))
for k, t in terms.items():
    left = 0
    for i, (term, v) in enumerate(t.items()):
        ax.barh(k, v, left=left, color=f"C{i}", label=term if k == kernels[0] else None)
        left += v
ax.set_xlabel("cycles per inference")
ax.legend(fontsize=8, ncol=2)
plt.show()

# %% tags=["hide-input"]
for k, t in terms.items():
    total = sum(t.values())
    print(f"{k}: " + ", ".join(f"{term} {100 * v / total:.0f} %" for term, v in t.items()))

# %% [markdown]
# The printed shares show what each kernel set spends its time on. The write-up's
# row-by-row kernel tests every weight, so its cost scales with the number of weights;
# the fast kernels pay per non-zero input and per table entry instead.
#
# ## Ternary inference against 2-bit and 4-bit
#
# The research plan's item "actually implement ternary inference": 1.58-bit weights
# (5 trits per byte) store the 64/64/64 network in less than half the 4-bit bytes.
# What they cost and buy on the chip, beside 2bitsym and 4bitsym at the same shape:

# %% tags=["remove-input"]
tern = [n for n in ("FC Ternary 64/64/64", "FC 2bitsym 64/64/64", "FC 4bitsym 64/64/64")
        if (n, "fast") in ok]
display(Markdown(bk.markdown_table([
    {"model": n, "accuracy %": f"{accuracy[n]:.2f}", "weights B": f"{ok[(n, 'fast')]['weight_bytes']:,}",
     "fast cycles": f"{ok[(n, 'fast')]['cycles_mean']:,.0f}",
     "baseline cycles": f"{ok[(n, 'baseline')]['cycles_mean']:,.0f}" if (n, "baseline") in ok else "-",
     "flash B": f"{ok[(n, 'fast')]['flash_bytes']:,}"} for n in tern])))
if len(tern) == 3:
    t, b2, b4 = (ok[(n, "fast")] for n in tern)
    display(Markdown(
        f"Ternary runs at {t['cycles_mean'] / b4['cycles_mean']:.2f}x the 4bitsym network's "
        f"fast cycles and {t['cycles_mean'] / b2['cycles_mean']:.2f}x 2bitsym's, in "
        f"{t['weight_bytes'] / b4['weight_bytes']:.0%} of 4bitsym's weight bytes, at "
        f"{accuracy[tern[0]] - accuracy[tern[2]]:+.2f} points of accuracy against it "
        f"(profile `{S.profile}`)."))

# %% [markdown]
# ## Provenance

# %% tags=["hide-input"]
bk.show_provenance(S)
