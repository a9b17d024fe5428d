"""The run-directory commands: export, verify and mcu, each a few short steps.

Training writes a run directory (``training.train``); everything after starts from
it here, once: ``export_run`` reads the model and builds its ``Exported``
description, and the deployment side (``bitnetlib.deploy``: packing, header, integer
model, C engine, firmware, emulator) works from that description alone.
"""
from pathlib import Path

import numpy as np

from .deploy import intmodel
from .deploy.emulator import Emulator
from .deploy.engine import EngineError, EngineModel
from .deploy.firmware import FLASH_LIMIT, KERNELS, RAM_LIMIT, FirmwareOverflow, McuError, build
from .deploy.model import read_header_id, with_layout, write_header
from .deploy.packing import ExportError
from .training.data import load_mnist
from .training.export import CALIB_IMAGES, check_deployable, export_model
from .training.rundir import RunDirError, load_run, model_file

# FC kernels' entry points: they split a round into layers
FC_ENTRIES = ("bn_fc", "bn_fc_cols", "bn_fc_rows_binary_fast")
# why a trained model cannot be deployed: an option or layer the engine lacks, a header
# the engine rejects, a firmware that does not build or fit, images it cannot take
DEPLOY_ERRORS = (ExportError, EngineError, McuError, intmodel.InputError)


def load_model_file(run_dir):
    """(cfg, model) of a run; an unreadable model.pt is a clear ExportError."""
    path = model_file(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (bitnet train)")
    try:
        return load_run(run_dir)
    except RunDirError as e:
        raise ExportError(str(e)) from e
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise ExportError(f"{path}: cannot read the model file ({type(e).__name__}: "
                          f"{first})") from e


def export_run(run_dir, data=None, layout: str = "rows"):
    """(cfg, model, Exported) of a run; a CNN's shifts come from the first CALIB_IMAGES
    training images (``data``: MnistTensors, loaded if needed)."""
    cfg, model = load_model_file(run_dir)
    check_deployable(cfg, str(run_dir))
    calib = None
    if cfg.model == "cnn":
        if data is None:
            data = load_mnist(cfg.data_root or None, train_subset=CALIB_IMAGES)
        calib = data.train_x[:CALIB_IMAGES]
    return cfg, model, export_model(model, calib, layout)


# ------------------------------------------------------------------ verify

def fakequant_predictions(model, x, batch: int = 2000) -> np.ndarray:
    import torch
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]).numpy()


def compare(y, fq, ref, absmax, pred_c, logits_c) -> dict:
    """Accuracies and disagreements of the three models on the same images."""
    pct = lambda p: 100.0 * int((p == y).sum()) / len(y)
    return dict(n=len(y), acc_fakequant=pct(fq), acc_int=pct(ref.pred), acc_c=pct(pred_c),
                mismatch_c_int=int((pred_c != ref.pred).sum()),
                mismatch_int_fakequant=int((ref.pred != fq).sum()),
                mismatch_logits_c_int=int((logits_c != ref.logits).any(axis=1).sum()),
                mismatch_absmax_fakequant=int((absmax.pred != fq).sum()))


def verify(run_dir, header=None) -> dict:
    """All 10,000 test images through the fake-quantized model, the integer model and
    the C engine (from ``header``, default RUN_DIR/bitnet_model.h: the run's own export,
    written again when it is missing or was exported by an older export rule).

    ``mismatch_absmax_fakequant``: the integer model with the float model's absmax
    scaling instead of ShiftNorm; near 0 means ShiftNorm's power-of-two scale (max
    lands in 64..127, not at 127) is what makes the integer and fake-quant models differ.
    """
    cfg, _ = load_model_file(run_dir)
    data = load_mnist(cfg.data_root or None)
    _, model, exp = export_run(run_dir, data)
    header = Path(header) if header else Path(run_dir) / "bitnet_model.h"
    if header == Path(run_dir) / "bitnet_model.h" and (
            not header.exists() or read_header_id(header) != exp.model_id):
        write_header(exp, header, str(run_dir))
    engine = EngineModel(header, exp.model_id)
    x = intmodel.input_codes(data.test_x)                             # (N, 256)
    pred_c, logits_c = engine.run(x.astype(np.int8))
    return compare(data.test_y.numpy(), fakequant_predictions(model, data.test_x),
                   intmodel.run(exp, x), intmodel.run(exp, x, norm="absmax"), pred_c, logits_c)


# ------------------------------------------------------------------ mcu

def _try_fit(exp, header, kernel, build_dir, image, hot_mem):
    """(fw, emu) for a 2 KB build, or the McuError that says it does not fit: a static
    overflow at link time, or a stack that runs into .bss."""
    from unicorn import UcError
    fw = build(exp, header, kernel, build_dir, hot_mem=hot_mem)
    emu = Emulator(fw["elf"], RAM_LIMIT)
    try:
        emu.run(image, 0, exp.n_classes)        # one image, then look at the stack fill
        emu.stack_peak()
    except UcError as e:
        raise FirmwareOverflow(f"emulator fault ({e}): stack overflow into .bss",
                               flash=False, sram=True) from e
    except McuError as e:                       # the stack reached .bss: SRAM is short
        raise FirmwareOverflow(f"error: SRAM overflow: {e}", flash=False, sram=True) from e
    return fw, emu


def _overflow_text(e: McuError) -> str:
    return "; ".join(l.removeprefix("error: ") for l in str(e).splitlines() if "overflow" in l)


def fitting_build(exp, header, kernel, build_dir, image, log):
    """The firmware as it fits the CH32V003: hot code in SRAM; for the fast kernels,
    if SRAM is short, hot code in flash (a CNN first tries its conv finish pass in
    SRAM, hot_code 'flash+conv'); else (not fitting) hot code in SRAM on a
    virtual chip with 64 KB of SRAM, measured and flagged. -> fw, emu, fits, hot_mem"""
    err = None
    levels = ["ram", "flash"] if kernel == "fast" else ["ram"]
    if kernel == "fast" and any(l.kind != "fc" for l in exp.layers):
        levels.insert(1, "conv")                # only the conv finish pass in SRAM
    for hot_mem in levels:
        try:
            fw, emu = _try_fit(exp, header, kernel, build_dir, image, hot_mem)
            if err is not None:
                log(f"note: with the fast kernels in SRAM it does not fit ({err}); "
                    f"hot code in flash")
            return fw, emu, True, hot_mem
        except FirmwareOverflow as e:
            err = _overflow_text(e)
            if e.flash:
                break               # more SRAM would not help
    log(f"note: {err}; measuring on a virtual chip with 64 KB of SRAM and 1 MB of "
        f"flash (does not fit)")
    fw = build(exp, header, kernel, build_dir, ram_size=65536, ram_limit=65536,
               flash_limit=1 << 20)
    return fw, Emulator(fw["elf"], 65536), False, "ram"


def check_images(emu, host, x, y, n_classes) -> dict:
    """Every image in the firmware against the host engine: prediction, logits and
    every layer's accumulators (no instruction hooks)."""
    ref_pred, ref_logits = host.run(x)
    mismatch = mismatch_layers = correct = 0
    for i in range(len(x)):
        st, pred, logits, tr = emu.run(x[i], host.trace_len, n_classes)
        if st != 0:
            raise McuError(f"image {i}: the firmware returned bn_status {st}")
        bad = pred != ref_pred[i] or not np.array_equal(logits, ref_logits[i])
        bad_layers = not np.array_equal(tr, host.trace(x[i]))
        mismatch += int(bad or bad_layers)
        mismatch_layers += int(bad_layers)
        correct += int(pred == y[i])
    return dict(mismatch_vs_host=mismatch, mismatch_layers=mismatch_layers,
                accuracy=100.0 * correct / len(x))


def count_images(emu, x, n_classes) -> tuple:
    """Instruction and cycle counts of every image, its per-function profile and its
    cycles per layer (before the first FC kernel, then each FC layer with its ShiftNorm)."""
    counts, layer_cycles, prof = [], [], {}
    emu.start_counting(markers=FC_ENTRIES)
    for image in x:
        emu.marks, c0 = [], emu.cyc
        emu.run(image, 0, n_classes)
        for f, (n_i, n_c) in emu.profile().items():
            p = prof.setdefault(f, [0, 0])
            p[0], p[1] = p[0] + n_i, p[1] + n_c
        counts.append(emu.take_counts())
        layer_cycles.append(np.diff([c0] + [c for _, c in emu.marks] + [emu.cyc]))
    if emu.bad:
        raise McuError("instructions outside RV32EC executed:\n" + "\n".join(emu.bad[:10]))
    return counts, layer_cycles, prof


def count_summary(counts, layer_cycles, prof, model) -> dict:
    n = len(counts)
    r = dict(instructions_mean=float(np.mean([c.instructions for c in counts])),
             cycles_mean=float(np.mean([c.cycles for c in counts])),
             cycles_min=int(min(c.cycles for c in counts)),
             cycles_max=int(max(c.cycles for c in counts)))
    r["ms_at_48mhz"] = model.ms(r["cycles_mean"])
    by = {}
    for c in counts:
        for k, v in c.by_class.items():
            by[k] = by.get(k, 0) + v
    r["by_class_mean"] = {k: v / n for k, v in by.items()}
    r["profile_mean"] = {f: (v[0] / n, v[1] / n)
                         for f, v in sorted(prof.items(), key=lambda kv: -kv[1][1])}
    if len({len(l) for l in layer_cycles}) == 1:
        r["layer_cycles_mean"] = [float(v) for v in np.mean(layer_cycles, axis=0)]
    return r


def prepare_firmware(run_dir, kernel, build_dir, data):
    """The model of a run exported for the firmware (``kernel``'s layout) and for the
    host reference (rows): (exp, header, host EngineModel)."""
    _, _, ref_exp = export_run(run_dir, data, layout="rows")
    # the firmware's conv weights are flat (no padding per channel): less flash
    exp = with_layout(ref_exp, "rows" if kernel == "baseline" else "cols", conv_flat=True)
    ref_h = write_header(ref_exp, build_dir / "model_rows.h", str(run_dir))
    header = write_header(exp, build_dir / "model.h", str(run_dir))
    return exp, header, EngineModel(ref_h, ref_exp.model_id)


def mcu_run(run_dir, kernel: str = "fast", images: int = 100, timed: int = None,
            hooks: bool = True, build_dir=None, data=None, log=print) -> dict:
    """Build the firmware for RUN_DIR's model, run ``images`` MNIST test images in the
    emulator, check prediction and every accumulator against the host engine, count
    instructions and cycles on ``timed`` images (default all; 0 or hooks=False: none)."""
    if kernel not in KERNELS:
        raise McuError(f"kernel {kernel!r}: valid kernels are {', '.join(KERNELS)}")
    if not 1 <= images <= 10000 or (timed is not None and timed < 0):
        raise McuError(f"images={images}, timed={timed}: expected 1..10000 test images and "
                       f"timed >= 0")
    cfg, _ = load_model_file(run_dir)
    data = data if data is not None else load_mnist(cfg.data_root or None)
    build_dir = Path(build_dir) if build_dir else Path(run_dir) / "mcu" / kernel
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise McuError(f"cannot create the build directory {build_dir}: {e.strerror}") from e
    exp, header, host = prepare_firmware(run_dir, kernel, build_dir, data)
    x = intmodel.input_codes(data.test_x[:images]).astype(np.int8)
    fw, emu, fits, hot_mem = fitting_build(exp, header, kernel, build_dir, x[0], log)
    if not fits and any(l.layout == "cols" for l in exp.layers):
        # the cols kernels take more flash than the row kernels: a model that fits
        # only with the FC layers in rows (a wide CNN) runs so, and says it
        rows = with_layout(exp, "rows", conv_flat=True)
        rows_h = write_header(rows, build_dir / "model_fc_rows.h", str(run_dir))
        got = fitting_build(rows, rows_h, kernel, build_dir / "fc_rows", x[0], lambda s: None)
        if got[2]:
            log("note: with the cols FC kernels it does not fit; FC layers in rows")
            exp, header, (fw, emu, fits, hot_mem) = rows, rows_h, got
    check = check_images(emu, host, x, data.test_y[:images].numpy(), exp.n_classes)
    timed = len(x) if timed is None else min(timed, len(x))
    summary = dict(instructions_mean=None, cycles_mean=None)
    if hooks and timed:
        summary = count_summary(*count_images(emu, x[:timed], exp.n_classes), emu.model)
    stack = emu.stack_peak()
    ram = fw["ram_static"] + stack
    return dict(run_dir=str(run_dir), kernel=kernel, images=len(x),
                timed_images=timed if hooks else 0,
                hot_code={"ram": "SRAM", "conv": "flash+conv"}.get(hot_mem, "flash"),
                fc_layout=("cols" if any(l.layout == "cols" for l in exp.layers) else "rows"),
                flash_bytes=fw["flash"],
                ram_bytes=ram, ram_static=fw["ram_static"], stack_bytes=stack,
                fits_ch32v003=fits and ram <= RAM_LIMIT and fw["flash"] <= FLASH_LIMIT,
                **check, rv32ec_only=(True if hooks and timed else None),
                weight_bytes=exp.weight_bytes, **summary)


def format_result(r: dict) -> str:
    fit = "fits" if r["fits_ch32v003"] else "DOES NOT FIT"
    lines = [f"{r['run_dir']}: kernel {r['kernel']}, {r['images']} test images "
             f"({r['accuracy']:.2f}% correct)",
             f"  flash {r['flash_bytes']} of {FLASH_LIMIT} bytes (weights {r['weight_bytes']}), "
             f"SRAM {r['ram_bytes']} of {RAM_LIMIT} bytes ({r['ram_static']} static + "
             f"{r['stack_bytes']} stack peak): {fit} the CH32V003"
             + ("" if r['fits_ch32v003'] else " (measured on a virtual chip with more SRAM / flash)")
             + (f"; hot code in {r['hot_code']}" if r.get('hot_code') else ""),
             f"  mismatches vs host engine: {r['mismatch_vs_host']} (per-layer accumulators "
             f"differ on {r['mismatch_layers']})"]
    if r.get("cycles_mean") is not None:
        lines.append(f"  {r['instructions_mean']:.0f} instructions, {r['cycles_mean']:.0f} cycles "
                     f"(model estimate) = {r['ms_at_48mhz']:.2f} ms at 48 MHz, mean of "
                     f"{r['timed_images']} images; RV32EC only: {r['rv32ec_only']}")
    return "\n".join(lines)
