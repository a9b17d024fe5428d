"""A mixture of experts on the deployment side (numpy only; the C side: bn_moe.c).

``ExportedMoE`` holds the pieces of a trained ``fc_moe`` model, each an ordinary
``Exported`` FC network: an optional trunk, the gate (n_experts outputs) and the
experts. The integer model (``run_moe``) and the C engine (``bn_run_moe``) compute:

    features = input                       (no trunk), or
             = ShiftNorm+ReLU(trunk accumulators)
    expert   = argmax(gate(features))       first max wins, like every argmax here
    logits   = experts[expert](features)    only this expert runs

``moe_header_text`` writes the networks' headers one after the other and a
``bn_moe`` that points at them.
"""
import contextlib
import os
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import intmodel
from .model import Exported, LayerSpec, header_text, set_layout, symbol, with_layout
from .packing import ExportError, packed_bytes


@dataclass
class ExportedMoE:
    trunk: object              # Exported or None
    gate: Exported
    experts: list              # of Exported, all with the same n_classes
    moe_id: int = field(default=0)

    @property
    def parts(self) -> list:
        return ([self.trunk] if self.trunk is not None else []) + [self.gate, *self.experts]

    @property
    def n_experts(self) -> int:
        return len(self.experts)

    @property
    def input_len(self) -> int:
        return (self.trunk or self.gate).input_len

    @property
    def n_classes(self) -> int:
        return self.experts[0].n_classes

    @property
    def weight_bytes(self) -> int:
        return sum(p.weight_bytes for p in self.parts)

    def fingerprint(self) -> int:
        ids = [int(self.trunk is not None), *(p.model_id for p in self.parts)]
        return zlib.crc32(np.array(ids, np.int64).tobytes())


def make_moe(trunk, gate, experts) -> ExportedMoE:
    """An ExportedMoE whose shapes fit together (else an ExportError), with its id."""
    feat = trunk.n_classes if trunk is not None else gate.input_len
    if gate.n_classes != len(experts) or gate.input_len != feat:
        raise ExportError(f"gate: {gate.input_len} inputs -> {gate.n_classes} outputs, "
                          f"expected {feat} -> {len(experts)} (one per expert)")
    for i, e in enumerate(experts):
        if e.input_len != feat or e.n_classes != experts[0].n_classes:
            raise ExportError(f"expert {i}: {e.input_len} -> {e.n_classes}, expected {feat} "
                              f"-> {experts[0].n_classes}")
    moe = ExportedMoE(trunk, gate, list(experts))
    moe.moe_id = moe.fingerprint()
    return moe


def moe_with_layout(moe: ExportedMoE, layout: str) -> ExportedMoE:
    """Every network in ``layout`` (``deploy.model.with_layout``)."""
    trunk = None if moe.trunk is None else with_layout(moe.trunk, layout)
    return make_moe(trunk, with_layout(moe.gate, layout),
                    [with_layout(e, layout) for e in moe.experts])


def _compact_cols(exp: Exported, reads_image: bool) -> Exported:
    layers = [LayerSpec(**l.__dict__) for l in exp.layers]
    set_layout(layers, "cols")
    for l in layers:
        if l.layout == "cols" and (packed_bytes(l.n_in, l.n_out, l.wtype)
                                   > packed_bytes(l.n_out, l.n_in, l.wtype)):
            l.layout, l.centre = "rows", False
        l.centre = l.centre and reads_image
    out = Exported(layers, exp.input_len, exp.n_classes)
    out.model_id = out.fingerprint()
    return out


def firmware_layout(moe: ExportedMoE) -> ExportedMoE:
    """The fast kernels' layout for the flash: cols, except a layer whose columns pad
    to more bytes than its rows (an expert's 10 outputs fill 2 words of 8 fields per
    column: 16 fields for 10 weights) stays in rows; and only a network that reads the
    image keeps the first layer's centring (its wsum costs 4 bytes per output; on the
    trunk's features, which are 0 where ReLU cut them, it would skip nothing more)."""
    image = moe.trunk is None
    trunk = None if moe.trunk is None else _compact_cols(moe.trunk, True)
    return make_moe(trunk, _compact_cols(moe.gate, image),
                    [_compact_cols(e, image) for e in moe.experts])


@dataclass
class MoEResult:
    pred: np.ndarray           # (N,) argmax of the chosen expert's logits
    logits: np.ndarray         # (N, n_classes) int64
    expert: np.ndarray         # (N,) chosen expert
    gate_logits: np.ndarray    # (N, n_experts) int64


def features(moe: ExportedMoE, x_codes: np.ndarray) -> np.ndarray:
    """What gate and experts read: the input codes, or the trunk's ShiftNorm output."""
    if moe.trunk is None:
        return np.asarray(x_codes, np.int64)
    return intmodel.shiftnorm_relu(intmodel.run(moe.trunk, x_codes).logits)[0]


def run_moe(moe: ExportedMoE, x_codes: np.ndarray) -> MoEResult:
    """The integer model of the mixture on (N, input_len) codes."""
    h = features(moe, x_codes)
    gate = intmodel.run(moe.gate, h)
    logits = np.zeros((len(h), moe.n_classes), np.int64)
    for e in range(moe.n_experts):
        sel = gate.pred == e
        if sel.any():
            logits[sel] = intmodel.run(moe.experts[e], h[sel]).logits
    return MoEResult(logits.argmax(axis=1) if len(h) else np.zeros(0, np.int64), logits,
                     gate.pred, gate.logits)


def moe_symbol(moe: ExportedMoE) -> str:
    return f"bn_moe_{moe.moe_id:08x}"


def moe_header_text(moe: ExportedMoE, source: str = "") -> str:
    """The networks' headers (each guarded), then the bn_moe of them."""
    sym = moe_symbol(moe)
    texts = [header_text(p, f"{source} ({what})") for p, what in zip(
        moe.parts, (["trunk"] if moe.trunk is not None else []) + ["gate"]
        + [f"expert {i}" for i in range(moe.n_experts)])]
    experts = ", ".join(f"&{symbol(e)}" for e in moe.experts)
    trunk = f"&{symbol(moe.trunk)}" if moe.trunk is not None else "NULL"
    return "\n".join([*texts,
                      f"/* Mixture of experts, generated by bitnetlib.deploy.moe; do not edit.",
                      f" * bitnet-moe-symbol: {sym} */",
                      f"#ifndef BN_MOE_{moe.moe_id:08X}_H", f"#define BN_MOE_{moe.moe_id:08X}_H",
                      f"static const bn_model *const {sym}_experts[{moe.n_experts}] = "
                      f"{{{experts}}};",
                      f"static const bn_moe {sym} = {{BN_MOE_MAGIC, 0x{moe.moe_id:08X}u, {trunk}, "
                      f"&{symbol(moe.gate)}, {moe.n_experts}, {sym}_experts}};", "#endif", ""])


def write_moe_header(moe: ExportedMoE, path, source: str = "") -> Path:
    """Write the header atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(moe_header_text(moe, source))
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ExportError(f"cannot write {path}: {e.strerror}") from e
    return path


def read_moe_symbol(path) -> str:
    """The bn_moe symbol a header written by ``write_moe_header`` defines."""
    for line in Path(path).read_text(errors="replace").splitlines():
        if "bitnet-moe-symbol: " in line:
            return line.split("bitnet-moe-symbol: ")[1].split()[0]
    raise ExportError(f"{path}: not a mixture-of-experts header (no 'bitnet-moe-symbol' line)")
