"""A mixture of experts in the CH32V003 firmware (``MOE=1``: main.c runs bn_run_moe)
and the emulator, with cycles split into routing and expert.

Every image is checked against the host engine (prediction, logits, chosen expert);
the emulator records the cycle count at each entry of ``bn_run_network``, which
bn_run_moe calls once per network it runs, so a round splits into
    before   the firmware loop and bn_run_moe's checks of every network's shapes
    trunk    the shared first layer and its ShiftNorm (only with a trunk)
    gate     the gate network (its argmax is the routing decision)
    expert   the chosen expert, to the end of the round.
"""
from pathlib import Path

import numpy as np

from ..wtypes import TYPE_IDS
from .emulator import Emulator
from .firmware import FLASH_LIMIT, RAM_LIMIT, McuError, build
from .moe import moe_symbol
from .moe_engine import EngineMoE


def moe_constants(moe, header) -> dict:
    """Make variables for a mixture of experts: the scratch the engine reports
    (bn_moe_scratch_bytes), the kernels its networks need, no trace."""
    eng = EngineMoE(header, moe.moe_id)
    layers = [l for p in moe.parts for l in p.layers]
    wtypes = 0
    for l in layers:
        wtypes |= 1 << TYPE_IDS[l.wtype]
    layouts = (1 if any(l.layout == "rows" for l in layers) else 0) | \
              (2 if any(l.layout == "cols" for l in layers) else 0)
    return dict(INPUT=moe.input_len, CLASSES=moe.n_classes, SCRATCH=eng.scratch_bytes, TRACE=0,
                WTYPES=hex(wtypes), FC_WTYPES=hex(wtypes), LAYOUTS=layouts, CONV=0, MOE=1,
                MODEL_SYM=moe_symbol(moe))


def fitting_moe_build(moe, header, kernel, build_dir, image):
    """(fw, emu, fits, hot_mem): hot code in SRAM, else in flash (fast kernels), else a
    virtual chip with 64 KB of SRAM and 1 MB of flash (flagged as not fitting)."""
    from unicorn import UcError
    consts = moe_constants(moe, header)
    for hot_mem in (["ram", "flash"] if kernel == "fast" else ["ram"]):
        try:
            fw = build(None, header, kernel, build_dir, hot_mem=hot_mem, consts=consts)
            emu = Emulator(fw["elf"], RAM_LIMIT)
            emu.run(image, 0, moe.n_classes)
            emu.stack_peak()
            return fw, emu, True, hot_mem
        except (McuError, UcError):
            continue
    fw = build(None, header, kernel, build_dir, ram_size=65536, ram_limit=65536,
               flash_limit=1 << 20, consts=consts)
    return fw, Emulator(fw["elf"], 65536), False, "ram"


def run_images(emu, host: EngineMoE, x: np.ndarray) -> dict:
    """Every image in the firmware against the host engine, with the cycles of each
    part of the round (before, [trunk,] gate, expert) and the expert it chose."""
    ref_pred, ref_logits, ref_expert = host.run(x)
    emu.start_counting(markers=("bn_run_network",))
    parts, mismatch = [], 0
    for i, image in enumerate(x):
        emu.marks, c0 = [], emu.cyc
        st, pred, logits, _ = emu.run(image, 0, host.n_classes)
        expert = int.from_bytes(bytes(emu.uc.mem_read(emu.sym["bn_fw_expert"], 4)), "little")
        if st != 0:
            raise McuError(f"image {i}: the firmware returned bn_status {st}")
        mismatch += int(pred != ref_pred[i] or expert != ref_expert[i]
                        or not np.array_equal(logits, ref_logits[i]))
        parts.append(np.diff([c0] + [c for _, c in emu.marks] + [emu.cyc]))
        emu.take_counts()
    if emu.bad:
        raise McuError("instructions outside RV32EC executed:\n" + "\n".join(emu.bad[:10]))
    return dict(parts=np.array(parts), expert=ref_expert, mismatch_vs_host=mismatch)


def mcu_moe(moe, header, x: np.ndarray, kernel: str = "fast", build_dir=None) -> dict:
    """Build and run a mixture of experts (header written for ``kernel``'s layout) on
    ``x`` (N, input_len) int8; cycles per part and per image (model estimate)."""
    build_dir = Path(build_dir)
    fw, emu, fits, hot_mem = fitting_moe_build(moe, header, kernel, build_dir, x[0])
    r = run_images(emu, EngineMoE(header, moe.moe_id), x)
    names = ["before"] + (["trunk"] if moe.trunk is not None else []) + ["gate", "expert"]
    if r["parts"].shape[1] != len(names):
        raise McuError(f"expected {len(names)} parts per round, counted {r['parts'].shape[1]}")
    per_expert = {int(e): float(r["parts"][r["expert"] == e, -1].mean())
                  for e in np.unique(r["expert"])}
    ram = fw["ram_static"] + emu.stack_peak()
    return dict(kernel=kernel, images=len(x), hot_code="SRAM" if hot_mem == "ram" else "flash",
                flash_bytes=fw["flash"], ram_bytes=ram,
                fits_ch32v003=fits and ram <= RAM_LIMIT and fw["flash"] <= FLASH_LIMIT,
                weight_bytes=moe.weight_bytes, mismatch_vs_host=r["mismatch_vs_host"],
                cycles_mean=float(r["parts"].sum(1).mean()),
                part_cycles_mean={n: float(v) for n, v in zip(names, r["parts"].mean(0))},
                expert_cycles_mean=per_expert, ms_at_48mhz=emu.model.ms(float(r["parts"].sum(1).mean())))
