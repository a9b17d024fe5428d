"""The exported model: its Python description and its C header (numpy only).

``Exported`` is what the deployment side works from: the integer layers of a trained
model (``bitnetlib.training.export`` builds it) and, written out by ``header_text``,
the generated header the C engine and the firmware compile. Nothing here imports the
training stack.
"""
import contextlib
import errno
import os
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..wtypes import COLS_TYPES, TYPE_IDS
from . import packing
from .packing import ExportError

MAX_WIDTH = 65535            # bn_layer.in / .out are uint16_t
LAYER_KINDS = {"fc": 1, "conv": 2, "dw": 3}
LAYOUTS = {"rows": 0, "cols": 1, "flat": 2}


@dataclass
class LayerSpec:
    name: str                 # module name in the model (e.g. '3')
    kind: str                 # 'fc', 'conv' (1 -> C) or 'dw' (depthwise)
    wtype: str
    n_in: int                 # fc: in features; conv: input side
    n_out: int                # fc: out features; conv: channels
    weights: np.ndarray       # (n_out, row) int64 integer weights; row = n_in (fc) or 9
    shift: int = 0
    pool: int = 0
    layout: str = "rows"      # fc: 'rows' (out x in) or 'cols' (transposed, bitnet.h);
                              # conv: 'rows' or 'flat' (all out x 9 weights as one row)
    centre: bool = False      # cols, first layer of an FC net: wsum stored for centring

    @property
    def packed(self) -> np.ndarray:
        w = {"cols": self.weights.T, "flat": self.weights.reshape(1, -1)}.get(self.layout,
                                                                             self.weights)
        return packing.pack(w, self.wtype)

    @property
    def wsum(self) -> np.ndarray:
        """Per-output weight sums (int32), the centring term of bitnet.h."""
        return self.weights.sum(axis=1).astype(np.int32)


@dataclass
class Exported:
    layers: list
    input_len: int
    n_classes: int
    model_id: int = field(default=0)

    def fingerprint(self) -> int:
        """CRC32 of everything the engine reads: shapes, types, shifts, packed words."""
        crc = zlib.crc32(np.array([self.input_len, self.n_classes], np.int64).tobytes())
        for l in self.layers:
            head = [LAYER_KINDS[l.kind], TYPE_IDS[l.wtype], l.n_in, l.n_out, l.shift, l.pool]
            crc = zlib.crc32(np.array(head, np.int64).tobytes(), crc)
            crc = zlib.crc32(l.packed.astype("<u4").tobytes(), crc)
            if l.layout != "rows":          # rows-only models keep their old ids
                crc = zlib.crc32(l.layout.encode() + bytes([l.centre]), crc)
        return crc

    @property
    def weight_bytes(self) -> int:
        return int(sum(l.packed.size * 4 for l in self.layers))


def set_layout(layers: list, layout: str, conv_flat: bool = None):
    """FC layers of a type with a cols kernel in the cols layout (``layout='cols'``);
    the first layer of an FC net also gets centring (bitnet.h). Conv layers in the flat
    layout (``conv_flat``, default: with the cols layout; not Ternary): their weights
    packed as one row, no padding per channel. Same integers, other order."""
    if layout not in ("rows", "cols"):
        raise ExportError(f"layout {layout!r}: valid layouts are rows, cols")
    conv_flat = layout == "cols" if conv_flat is None else conv_flat
    for i, l in enumerate(layers):
        if l.kind != "fc":
            l.layout, l.centre = ("flat" if conv_flat and l.wtype != "Ternary" else "rows"), False
            continue
        cols = layout == "cols" and l.wtype in COLS_TYPES
        l.layout, l.centre = ("cols" if cols else "rows"), cols and i == 0


def fc_weight_bytes(sizes, wtypes, layout: str = "rows") -> int:
    """``Exported.weight_bytes`` of an FC net before it is trained: layer sizes
    [in, w1, ..., out], one weight type per layer, the layout of ``set_layout``.

    >>> fc_weight_bytes([256, 64, 64, 64, 10], ["4bitsym"] * 4)     # the 12 KB model
    12608
    >>> fc_weight_bytes([256, 64, 10], ["Ternary", "8bit"]), fc_weight_bytes([256, 64, 10], ["Ternary", "8bit"], "cols")
    (3968, 4736)
    """
    if layout not in LAYOUTS:
        raise ExportError(f"layout {layout!r}: valid layouts are {', '.join(LAYOUTS)}")
    if len(wtypes) != len(sizes) - 1:
        raise ExportError(f"{len(sizes) - 1} layers but {len(wtypes)} weight types given")
    total = 0
    for n_in, n_out, t in zip(sizes, sizes[1:], wtypes):
        cols = layout == "cols" and t in COLS_TYPES         # cols: the transposed matrix
        total += packing.packed_bytes(*((n_in, n_out) if cols else (n_out, n_in)), t)
    return total


def with_layout(exp: Exported, layout: str, conv_flat: bool = None) -> Exported:
    """A copy of ``exp`` in another layout (``set_layout``), with its own model_id."""
    layers = [LayerSpec(**{**l.__dict__}) for l in exp.layers]
    set_layout(layers, layout, conv_flat)
    out = Exported(layers, exp.input_len, exp.n_classes)
    out.model_id = out.fingerprint()
    return out


def _c_array(words: np.ndarray, per_line: int = 6) -> str:
    flat = [f"0x{int(w):08X}u" for w in words.ravel()]
    return "\n".join("    " + ", ".join(flat[i:i + per_line]) + ","
                     for i in range(0, len(flat), per_line))


def symbol(exp: Exported) -> str:
    return f"bn_model_{exp.model_id:08x}"


def _header_comment(exp: Exported, source: str) -> list:
    doc = packing.__doc__.split("PACKING", 1)[1].split("(ids,", 1)[0].rstrip()
    lines = [f"/* Generated by `bitnet export` from {source or 'a model'}; do not edit.",
             f" * model_id 0x{exp.model_id:08X}; symbol {symbol(exp)}",
             " * layers (kind type in out shift pool words):"]
    lines += [f" *   {l.name}: {l.kind} {l.wtype} {l.n_in} {l.n_out} {l.shift} {l.pool} "
              f"{l.packed.size}" + (f" ({l.layout}{', centred' if l.centre else ''})"
                                    if l.layout != "rows" else "") for l in exp.layers]
    return lines + [" *", " * PACKING" + doc.replace("\n", "\n * ").replace(" * \n", " *\n"),
                    " */"]


def header_text(exp: Exported, source: str = "") -> str:
    p, sym = f"bn_{exp.model_id:08x}", symbol(exp)
    lines = _header_comment(exp, source)
    lines += [f"#ifndef BN_MODEL_{exp.model_id:08X}_H", f"#define BN_MODEL_{exp.model_id:08X}_H",
              '#include "bitnet.h"', f"/* bitnet-model-symbol: {sym} */"]
    rows = []
    for i, l in enumerate(exp.layers):
        words = l.packed
        lines += [f"static const uint32_t {p}_w{i}[{words.size}] = {{", _c_array(words), "};"]
        extra = ", NULL, 0"
        if l.layout != "rows":       # weights transposed: in columns of out weights
            wsum = "NULL"
            if l.centre:
                wsum = f"{p}_s{i}"
                vals = ", ".join(f"{int(v)}" for v in l.wsum)
                lines += [f"static const int32_t {wsum}[{l.n_out}] = {{{vals}}};"]
            extra = f", {wsum}, {LAYOUTS[l.layout]}"
        rows.append(f"    {{{LAYER_KINDS[l.kind]}, {TYPE_IDS[l.wtype]}, {l.shift}, {l.pool}, "
                    f"{l.n_in}, {l.n_out}, {words.shape[1]}, {p}_w{i}{extra}}},")
    lines += [f"static const bn_layer {p}_layers[{len(rows)}] = {{", *rows, "};",
              f"static const bn_model {sym} = {{BN_MAGIC, BN_VERSION, 0x{exp.model_id:08X}u, "
              f"{len(rows)}, {exp.input_len}, {exp.n_classes}, {p}_layers}};", "#endif", ""]
    return "\n".join(lines)


def write_header(exp: Exported, path, source: str = "") -> Path:
    """Write the header atomically (temporary name, then rename)."""
    path = Path(path)
    text = header_text(exp, source)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")  # unique
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):        # a read-only disk refuses this too
            tmp.unlink()
        why = "disk full" if e.errno == errno.ENOSPC else e.strerror
        raise ExportError(f"cannot write {path}: {why}") from e
    return path


def read_header_id(path) -> int:
    """The model_id a generated header was written with (clear error otherwise)."""
    text = Path(path).read_text(errors="replace")
    for line in text.splitlines():
        if "bitnet-model-symbol: bn_model_" in line:
            return int(line.split("bn_model_")[1].split()[0], 16)
    raise ExportError(f"{path}: not a header written by `bitnet export` "
                      f"(no 'bitnet-model-symbol' line)")


def packed_stats(exp: Exported) -> list:
    """Per layer: weights, packed bytes (with row padding) and bits per weight."""
    out = []
    for l in exp.layers:
        n, words = l.weights.size, l.packed.size
        out.append(dict(name=l.name, kind=l.kind, type=l.wtype, n_weights=n,
                        packed_bytes=4 * words, bits_per_weight=32 * words / n))
    return out


def format_packed(exp: Exported) -> str:
    rows = packed_stats(exp)
    lines = [f"Packed {r['name']}: {r['kind']} {r['type']}, {r['n_weights']} weights -> "
             f"{r['packed_bytes']} bytes ({r['bits_per_weight']:.3f} bits/weight)" for r in rows]
    total = sum(r["packed_bytes"] for r in rows)
    lines.append(f"Packed total: {total} bytes ({total / 1024:.2f} KiB) in uint32 words, "
                 f"model_id 0x{exp.model_id:08X}")
    return "\n".join(lines)
