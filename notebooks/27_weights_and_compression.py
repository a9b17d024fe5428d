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
# # Weights: capacity, entropy and compression
#
# ## Overview
#
# The write-up reads its weights' code histograms several times: its export log prints
# each layer's entropy and "code capacity used" (about 3.2-3.4 bits of 4 for its
# 4bitsym model), it judges that its 8-bit weights effectively use only 5-6 of their 8
# bits, it finds QAT weights nearer capacity than post-training-quantized ones, and it
# suggests that entropy coding could shrink the weights to under 80 % of their size.
# This chapter measures each of these on the 256-64-64-64-10 network of every weight
# type (the models of {doc}`14_export_and_verification`), builds the entropy coder
# (canonical Huffman, `bitnetlib.deploy.huffman`, and a decoder in C,
# `c_engine/bn_huffman.c`), and counts what decoding costs on the CH32V003. It ends
# with NF4's loss curves beside 4bitsym's and two diagrams: the network and the
# pipeline.

# %% tags=["parameters"]
profile = "smoke"      # "smoke": about a minute on a CPU; "full": the write-up's settings
epochs = None          # None: profile's value (smoke 2, full 60)
train_subset = None    # training images (0: all); None: profile's value (smoke 4000)
augment = None         # None: profile's value (smoke off, full on)
widths = [64, 64, 64]
types = ["Binary", "Ternary", "2bitsym", "4bitsym", "4bit", "8bit", "FP130", "NF4"]
ptq_types = ["8bit", "4bitsym", "2bitsym", "Ternary", "Binary"]   # []: no PTQ section
mcu_images = None      # test images per emulated inference (cycles vary little); None: 3
device = "auto"
seed = 0
threads = None         # None: profile's value (smoke 1, full all cores)

# %% tags=["hide-input"]
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from bitnetlib import book as bk
from bitnetlib.book import diagrams, weights
from bitnetlib.deploy import codestats, firmware
from bitnetlib.deploy.cycles import CH32V003
from bitnetlib.deploy.firmware import RAM_LIMIT
from bitnetlib.pipeline import DEPLOY_ERRORS, export_run
from bitnetlib.wtypes import TYPES

S, common = bk.headline_settings(globals(), smoke=dict(mcu_images=3), full=dict(mcu_images=3))
common["widths"] = list(widths)
W = bk.WRITEUP_WEIGHTS
cfgs = {q: bk.resolve_config({**common, "quant": q}, "configs/fc_4bitsym_64x3_aug.yaml")
        for q in types}
P = bk.profile_settings(S.profile, **bk.PTQ_RECIPE)            # chapter 3's recipe
ptq_common = bk.ptq_recipe(P, S.device, S.seed)
ptq_cfgs = {q: bk.resolve_config({**ptq_common, "quant": q}) for q in ["None", *ptq_types]}
bk.require([*cfgs.values(), *(ptq_cfgs.values() if ptq_types else [])])
runs = {q: SimpleNamespace(cfg=c, metrics=bk.run_cached(c)[1]) for q, c in cfgs.items()}
display(Markdown(bk.profile_note(S)))

# %% [markdown]
# ## The network and the pipeline
#
# Every model of this chapter is the write-up's fully connected network: the 16x16
# image is quantized to 256 int8 codes, then four BitLinear layers, each but the last
# followed by the engine's ShiftNorm + ReLU; the weight type is a property of each
# linear layer (here all four share one). The packed sizes in the diagram are those
# of the 4bitsym model.

# %% mystnb={"figure": {"caption": "The 256-64-64-64-10 network as the engine runs it: BitLinear layers (blue; shape, weight type, packed bytes) and the ShiftNorm + ReLU stages between them.", "name": "fig-weights-architecture"}}
dims = [256, *widths, 10]
fig = diagrams.architecture(widths, ["4bitsym"] * (len(dims) - 1))
plt.show()

# %% tags=["remove-input"]
n_layer = [a * b for a, b in zip(dims[:-1], dims[1:])]
display(Markdown(f"The first layer holds {n_layer[0]:,} of the {sum(n_layer):,} weights "
                 f"({100 * n_layer[0] / sum(n_layer):.0f} %), so its codes decide most of "
                 f"every size below."))

# %% [markdown]
# A model travels from training to the chip along one path; the host engine, the
# browser and the firmware all compile the same header.

# %% mystnb={"figure": {"caption": "The pipeline: QAT training, the run directory (or the results store), export to packed words, the generated C header, and the three places that compile it: the host engine (checked against the integer model), WebAssembly, and the RV32EC firmware run in the emulator.", "name": "fig-weights-pipeline"}}
fig = diagrams.pipeline()
plt.show()

# %% [markdown]
# ## Capacity used, per layer and type
#
# For each layer of each model: weights, packed bytes, the type's storage bits per
# weight, the entropy of the layer's code histogram (bits per weight an ideal coder
# needs), the capacity used (entropy / log2 of the number of levels) and how many of
# the type's codes occur at all. All are read from the exported integer weights, i.e.
# from what the header stores.

# %%
stats = {q: weights.export_stats(r.cfg) for q, r in runs.items()}
cols = ["type", "layer", "n_weights", "packed_bytes", "type_bits", "entropy",
        "capacity_used", "codes_used", "n_codes"]
display(Markdown(bk.markdown_table([{**row, "layer": i + 1} for rows in stats.values()
                                    for i, row in enumerate(rows)], cols)))

# %% mystnb={"figure": {"caption": "Entropy of each layer's codes (bars, layers 1-4 left to right) against the type's storage bits per weight (black line) and log2 of its number of levels (grey dashes).", "name": "fig-weights-entropy"}}
fig, ax = plt.subplots(figsize=(9, 3.6))
n_l = len(dims) - 1
xs = np.arange(len(stats))
for i in range(n_l):
    ax.bar(xs + (i - (n_l - 1) / 2) * 0.8 / n_l, [rows[i]["entropy"] for rows in stats.values()],
           width=0.8 / n_l, label=f"layer {i + 1}")
ax.hlines([TYPES[q].bits for q in stats], xs - 0.45, xs + 0.45, color="k", label="storage bits")
ax.hlines([rows[0]["level_bits"] for rows in stats.values()], xs - 0.45, xs + 0.45,
          color="grey", linestyles="--", label="log2(levels)")
ax.set_xticks(xs, list(stats))
ax.set(ylabel="bits per weight", ylim=(0, 10))
ax.legend(fontsize=7, ncol=3, loc="upper left")
plt.show()

# %% tags=["remove-input"]
flat = [(q, i + 1, row) for q, rows in stats.items() for i, row in enumerate(rows)]
lo = min(flat, key=lambda t: t[2]["capacity_used"])
hi = max(flat, key=lambda t: t[2]["capacity_used"])
ours4 = [round(r["entropy"], 2) for r in stats.get("4bitsym", [])]
display(Markdown(
    f"Capacity used ranges from {100 * lo[2]['capacity_used']:.0f} % ({lo[0]}, layer {lo[1]}) "
    f"to {100 * hi[2]['capacity_used']:.0f} % ({hi[0]}, layer {hi[1]}); "
    f"{sum(r['capacity_used'] > 0.99 for _, _, r in flat)} of {len(flat)} layers use more "
    f"than 99 % of it, {sum(r['codes_used'] < r['n_codes'] for _, _, r in flat)} leave "
    f"some of their type's codes unused. "
    + (f"Our 4bitsym layers carry {ours4} bits per weight; the write-up's export log gives "
       f"{W['entropy_4bitsym']['bits']} ({W['entropy_4bitsym']['source']})." if ours4 else "")))

# %% [markdown]
# ## How many bits do 8-bit weights carry?
#
# The write-up judges from its accuracy-vs-size plot that 8-bit weights effectively use
# only 5 to 6 of their bits. The entropy of the 8bit model's codes is another measure
# of the same question: how many bits per weight an ideal coder would need to store
# them.

# %%
e8 = [dict(layer=i + 1, entropy=r["entropy"], codes_used=r["codes_used"],
           huffman_bits=r["huffman_bits"]) for i, r in enumerate(stats.get("8bit", []))]
if e8:
    display(Markdown(bk.markdown_table(e8)))

# %% mystnb={"figure": {"caption": "Code histograms of the 8bit model's layers (share of weights per code, log scale): the codes in use and how unevenly.", "name": "fig-weights-8bit-hist"}}
fig, ax = plt.subplots(figsize=(8, 3.2))
if "8bit" in runs:
    _, _, exp8 = export_run(bk.run_dir_of(runs["8bit"].cfg))
    for i, l in enumerate(exp8.layers):
        h = codestats.histogram(l)
        ax.plot(np.arange(len(h)) - 128, h / h.sum(), lw=0.9, label=f"layer {i + 1}")
ax.set(yscale="log", xlabel="integer weight", ylabel="share of weights")
ax.legend(fontsize=7)
plt.show()

# %% tags=["remove-input"]
if e8:
    lo8, hi8 = W["effective_8bit"]["bits"]
    mean8 = codestats.totals(stats["8bit"])["entropy"]
    where = "within" if lo8 <= mean8 <= hi8 else ("above" if mean8 > hi8 else "below")
    display(Markdown(
        f"The 8bit model's codes carry {min(r['entropy'] for r in e8):.2f} to "
        f"{max(r['entropy'] for r in e8):.2f} bits per weight ({mean8:.2f} on average over "
        f"all weights), {where} the write-up's {lo8}-{hi8} effective bits "
        f"({W['effective_8bit']['source']}). Entropy counts how evenly codes are used, "
        f"not how many bits matter for accuracy, so the two estimates answer different "
        f"questions."))

# %% [markdown]
# ## QAT against post-training quantization
#
# Chapter {doc}`03_qat_vs_ptq` compares accuracies. Here the float model of its recipe
# (30 epochs, step schedule, no augmentation) is quantized after training into each
# type (`bitnetlib.training.ptq`, the type's clip rule), and its per-layer entropy is
# set beside that of the QAT model of the same type and recipe.

# %%
ptq = {}
if ptq_types:
    float_model = bk.run_cached(ptq_cfgs["None"])[0].cpu()
    for q in ptq_types:
        qat_rows = weights.export_stats(ptq_cfgs[q])
        ptq_rows = weights.ptq_stats(float_model, ptq_cfgs["None"], q)
        ptq[q] = [dict(type=q, layer=i + 1, qat=a["entropy"], ptq=b["entropy"],
                       level_bits=a["level_bits"]) for i, (a, b) in enumerate(zip(qat_rows, ptq_rows))]
    display(Markdown(bk.markdown_table([r for rows in ptq.values() for r in rows])))

# %% mystnb={"figure": {"caption": "Entropy per layer (1-4 along each group) of the QAT model (filled) and of the float model quantized after training (open), by weight type; dashes: log2 of the number of levels.", "name": "fig-weights-qat-ptq"}}
fig, ax = plt.subplots(figsize=(8, 3.4))
for k, (q, rows) in enumerate(ptq.items()):
    x = k + np.linspace(-0.3, 0.3, len(rows))
    ax.plot(x, [r["qat"] for r in rows], "o-", color="C0", label="QAT" if k == 0 else None)
    ax.plot(x, [r["ptq"] for r in rows], "o--", mfc="none", color="C3",
            label="PTQ from float" if k == 0 else None)
    ax.hlines(rows[0]["level_bits"], k - 0.4, k + 0.4, color="grey", linestyles=":")
ax.set_xticks(range(len(ptq)), list(ptq))
ax.set_ylabel("entropy [bits per weight]")
ax.legend(fontsize=8)
plt.show()

# %% tags=["remove-input"]
if ptq:
    diff = {q: np.mean([r["qat"] - r["ptq"] for r in rows]) for q, rows in ptq.items()}
    higher = [q for q, d in diff.items() if round(d, 2) > 0]
    display(Markdown(
        "Mean entropy of QAT minus PTQ over the layers: "
        + ", ".join(f"{q} {d:+.2f} bits" for q, d in diff.items())
        + f". QAT codes have the higher entropy for {len(higher)} of {len(diff)} types"
        + (f" ({', '.join(higher)})" if higher else "")
        + f"; the write-up's expectation: {W['qat_vs_ptq']['source']}."))

# %% [markdown]
# ## Entropy coding the weights
#
# Each layer gets its own canonical Huffman code over its field histogram
# (`bitnetlib.deploy.huffman`: code lengths by package-merge, at most 15 bits). Its
# size counts everything the decoder reads from flash: the bit stream in whole words
# and the table (a 12-byte struct, the count of codes per length, the symbols). The
# entropy bound is entropy x weights / 8.

# %%
tot = {q: codestats.totals(rows) for q, rows in stats.items()}
hcols = ["type", "packed_bytes", "entropy_bytes", "huffman_stream_bytes",
         "huffman_table_bytes", "huffman_bytes", "saved_bytes", "saved_share"]
display(Markdown(bk.markdown_table([{"type": q, **t} for q, t in tot.items()], hcols)))

# %% mystnb={"figure": {"caption": "Weight bytes of each model: packed as the engine reads them, Huffman-coded (stream + tables), and the entropy bound.", "name": "fig-weights-huffman-bytes"}}
fig, ax = plt.subplots(figsize=(9, 3.4))
xs = np.arange(len(tot))
for k, (key, label) in enumerate([("packed_bytes", "packed"), ("huffman_bytes", "Huffman"),
                                  ("entropy_bytes", "entropy bound")]):
    ax.bar(xs + 0.27 * (k - 1), [t[key] for t in tot.values()], width=0.27, label=label)
ax.set_xticks(xs, list(tot))
ax.set_ylabel("bytes")
ax.legend(fontsize=8)
plt.show()

# %% tags=["remove-input"]
gap = {q: t["huffman_stream_bytes"] / t["entropy_bytes"] - 1 for q, t in tot.items()}
gap_q = max(gap, key=gap.get)
best = max(tot, key=lambda q: tot[q]["saved_share"])
worst = min(tot, key=lambda q: tot[q]["saved_share"])
share = {q: 1 - t["saved_share"] for q, t in tot.items()}
under = [q for q, s in share.items() if s < W["compression"]["share"]]
display(Markdown(
    f"Huffman coding saves {100 * tot[best]['saved_share']:.0f} % of the packed bytes for "
    f"{best} ({tot[best]['saved_bytes']:,} bytes) and {100 * tot[worst]['saved_share']:.0f} % "
    f"for {worst}; it brings {len(under)} of {len(tot)} models under the write-up's "
    f"{100 * W['compression']['share']:.0f} % of their size"
    + (f" ({', '.join(under)})" if under else "")
    + f" ({W['compression']['source']}). The coder's distance from the entropy bound is "
    f"largest for {gap_q} ({100 * gap[gap_q]:.0f} % more stream than the bound): a code per "
    f"weight takes at least 1 bit, however skewed the histogram."))

# %% [markdown]
# ## What decoding costs on the CH32V003
#
# The decoder (`bn_huff_decode`, bit by bit, no lookup table, no multiplication) runs
# in a minimal RV32EC image (`firmware/huffbench.c`) in the emulator of chapter
# {doc}`15_ch32v003_deployment`: every layer is decoded a row at a time into a row
# buffer in SRAM, the decoded fields are checked against the encoder's input, and the
# cycle model counts a second, unchecked round. Streams and tables are in flash; the
# decoder's code runs from flash, and for one type also from SRAM. Weights are decoded
# to their packed field values; feeding them to a kernel is not counted. Each weight
# is used once per inference, so decoding on the fly adds one model's decode per
# inference; beside it, the inference itself (fast and baseline firmware,
# `mcu_images` test images, from the cache like chapter 15's).

# %% tags=["hide-input"]
def emulated(cfg, kernel):
    """mcu_cached's result, or {'why': the first line of the reason} when the firmware
    cannot run the model here."""
    try:
        return bk.mcu_cached(cfg, kernel=kernel, images=S.mcu_images)
    except DEPLOY_ERRORS as e:
        return {"why": f"{kernel}: {type(e).__name__}: {str(e).splitlines()[0][:80]}"}


cost = []
if firmware.have_toolchain():
    for q, r in runs.items():
        bench = weights.huffman_bench(r.cfg)
        dec = sum(b["cycles"] for b in bench)
        n = sum(b["n_weights"] for b in bench)
        fast, base = emulated(r.cfg, "fast"), emulated(r.cfg, "baseline")
        cyc = lambda r: round(r["cycles_mean"]) if r.get("cycles_mean") else None
        cost.append(dict(type=q, saved_bytes=tot[q]["saved_bytes"], decode_cycles=dec,
                         cycles_per_weight=dec / n, decode_ms=CH32V003.ms(dec),
                         inference_fast=cyc(fast), inference_baseline=cyc(base),
                         ram_fast=fast.get("ram_bytes"), ram_baseline=base.get("ram_bytes"),
                         note="; ".join(r["why"] for r in (fast, base) if "why" in r)))
    display(Markdown(bk.markdown_table(cost)))
else:
    display(Markdown("No RISC-V toolchain here: the decoder's cycles are not measured."))

# %% mystnb={"figure": {"caption": "Per model: flash bytes Huffman coding saves (left) against the cycles per inference that decoding every weight adds, beside the inference's own cycles with the fast and the baseline kernels (right, log scale).", "name": "fig-weights-decode-cost"}}
fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
names = [c["type"] for c in cost]
a1.bar(names, [c["saved_bytes"] for c in cost])
a1.set_ylabel("flash bytes saved")
xs = np.arange(len(cost))
for k, (key, label) in enumerate([("decode_cycles", "Huffman decode"),
                                  ("inference_fast", "inference, fast"),
                                  ("inference_baseline", "inference, baseline")]):
    a2.bar(xs + 0.27 * (k - 1), [c[key] or 0 for c in cost], width=0.27, label=label)
a2.set_xticks(xs, names)
a2.set(yscale="log", ylabel="cycles per inference")
a2.legend(fontsize=7)
for a in (a1, a2):
    a.tick_params(axis="x", labelsize=7, rotation=45)
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
if cost:
    c4 = next((c for c in cost if c["type"] == "4bitsym"), cost[0])
    sram = weights.huffman_bench(runs[c4["type"]].cfg, "sram")
    sram_cpw = sum(b["cycles"] for b in sram) / sum(b["n_weights"] for b in sram)
    n_w = sum(s["n_weights"] for s in stats[c4["type"]])
    ratio = c4["decode_cycles"] / c4["inference_fast"] if c4["inference_fast"] else None
    row_buf = max(dims[:-1])
    free = RAM_LIMIT - c4["ram_fast"] if c4["ram_fast"] else None
    free_b = RAM_LIMIT - c4["ram_baseline"] if c4["ram_baseline"] else None
    display(Markdown(
        f"Decoding costs {min(c['cycles_per_weight'] for c in cost):.0f} to "
        f"{max(c['cycles_per_weight'] for c in cost):.0f} cycles per weight with the decoder "
        f"in flash ({c4['type']}: {c4['cycles_per_weight']:.0f}; {sram_cpw:.0f} with the "
        f"decoder in SRAM). For {c4['type']} that is {c4['decode_cycles']:,} cycles "
        f"({c4['decode_ms']:.1f} ms at 48 MHz) per inference to save "
        f"{c4['saved_bytes']:,} bytes of flash"
        + (f", {ratio:.0f} times the fast inference's own {c4['inference_fast']:,.0f} cycles"
           if ratio else "")
        + f". Decoding once into SRAM instead is impossible: the decoded fields take "
        f"{n_w:,} bytes (one per weight), the packed weights alone {tot[c4['type']]['packed_bytes']:,}, "
        f"and the chip has {RAM_LIMIT:,}. On the fly, a row buffer of {row_buf} bytes is "
        f"needed"
        + (f", while the fast firmware leaves {free} bytes of SRAM free" if free is not None
           else "")
        + (f" and the baseline firmware (rows, the order the stream is in) {free_b}"
           if free_b is not None else "")
        + ". A table-driven decoder would be faster at the price of a lookup table per "
        f"layer; this bit-serial one shows the order of magnitude."))

# %% [markdown]
# ## NF4 and 4bitsym, epoch by epoch
#
# Chapter {doc}`11_nf4` compares the final training loss of NF4, 4bitsym and FP130
# across widths. Here are the per-epoch losses of the 64/64/64 models above (the same
# recipe, with augmentation at `full`).

# %% mystnb={"figure": {"caption": "Training loss (left) and test loss (right) per epoch of the 64/64/64 models with NF4, 4bitsym and FP130 weights.", "name": "fig-weights-nf4-curves"}}
curves = [q for q in ("NF4", "4bitsym", "FP130") if q in runs]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharex=True)
for ax, key in zip(axes, ("train_loss", "test_loss")):
    for q in curves:
        m = runs[q].metrics
        ax.plot([e["epoch"] for e in m], [e[key] for e in m], label=q)
    ax.set(xlabel="epoch", ylabel=key.replace("_", " "), yscale="log")
    ax.grid(alpha=0.3, which="both")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
if {"NF4", "4bitsym"} <= set(runs):
    nf, b4 = runs["NF4"].metrics, runs["4bitsym"].metrics
    lower = sum(a["train_loss"] < b["train_loss"] for a, b in zip(nf, b4))
    display(Markdown(
        f"NF4's training loss is below 4bitsym's in {lower} of {len(nf)} epochs; after the "
        f"last, {nf[-1]['train_loss']:.4f} against {b4[-1]['train_loss']:.4f} (test "
        f"accuracy {nf[-1]['test_acc']:.2f} % against {b4[-1]['test_acc']:.2f} %). The "
        f"write-up's expectation: {W['nf4']['source']}."))

# %% [markdown]
# ## Provenance

# %%
bk.show_provenance(S)
