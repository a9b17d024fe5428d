"""Export: a trained model -> integer weights -> packed words -> a C header.

Reads the quantizer's integer codes (``layer.weight_codes()``, ``quantizer.int_levels``);
nothing is re-quantized here.

PACKING (the one definition; c_engine/bitnet.h carries the same text). A weight
matrix is ``out`` rows of ``n`` weights (FC: n = in features; conv: n = 9). Each row
is packed on its own into ``ceil(n / per_word)`` uint32 words; fields fill a word from
the most significant end (the row's first weight sits in the top bits of its first
word); padding fields at the end of a row are zero bits and never read, so every
width packs (the 12 KB ternary net's 112-wide layer takes 6 words of 20 trits per row).

    type     id  per_word  field f -> integer weight
    Binary    1     32     0 -> -1, 1 -> +1
    Ternary   2     20     byte = 81 t0 + 27 t1 + 9 t2 + 3 t3 + t4, trit t -> t - 1
                           (5 weights per byte, 4 bytes per word, first byte on top)
    2bitsym   3     16     2f - 3
    4bitsym   4      8     2f - 15
    4bit      5      8     f - 8
    8bit      6      4     f - 128
    FP130     7      8     f = sign << 3 | e -> (-1)^sign * 2^e
    NF4       8      8     NF4_TABLE[f] = round(127 * NF4 level)

>>> pack(np.array([[-15, 1, 3, 15, -1, -3, 13, 7]]), "4bitsym")[0].tolist() == [0x089F76EB]
True
>>> hex(int(pack(np.array([[1, 0, -1, -1, 1]]), "Ternary")[0, 0]))
'0xbf000000'
"""
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from . import intmodel
from .layers import BitConv2d, BitLinear, InputQuant
from .quant import get_quantizer

TYPE_IDS = {"Binary": 1, "Ternary": 2, "2bitsym": 3, "4bitsym": 4, "4bit": 5, "8bit": 6,
            "FP130": 7, "NF4": 8}
PER_WORD = {"Binary": 32, "Ternary": 20, "2bitsym": 16, "4bitsym": 8, "4bit": 8, "8bit": 4,
            "FP130": 8, "NF4": 8}
NF4_TABLE = tuple(get_quantizer("NF4").int_levels)
MAX_WIDTH = 65535            # bn_layer.in / .out are uint16_t
CONV_TARGET = 8191           # conv maps are scaled to <= 2^13 on the calibration images
LAYER_KINDS = {"fc": 1, "conv": 2, "dw": 3}
LAYOUTS = {"rows": 0, "cols": 1}
# types with a cols-layout (fast) kernel, bn_fc_cols; other FC layers stay in rows
COLS_TYPES = ("Binary", "2bitsym", "4bitsym", "4bit", "FP130")


class ExportError(ValueError):
    pass


def field_values(wtype: str) -> list:
    """Integer weight of every field value f of a type (ternary: of every trit)."""
    table = {"Binary": [-1, 1], "Ternary": [-1, 0, 1],
             "2bitsym": [2 * f - 3 for f in range(4)], "4bitsym": [2 * f - 15 for f in range(16)],
             "4bit": [f - 8 for f in range(16)], "8bit": [f - 128 for f in range(256)],
             "FP130": [2 ** e for e in range(8)] + [-(2 ** e) for e in range(8)],
             "NF4": list(NF4_TABLE)}
    if wtype not in table:
        raise ExportError(f"weight type {wtype!r} has no C kernel; valid: {', '.join(TYPE_IDS)}")
    return table[wtype]


def encode(int_w: np.ndarray, wtype: str) -> np.ndarray:
    """Integer weights -> field values (int64, same shape); an unencodable value is an error."""
    lut = {v: f for f, v in enumerate(field_values(wtype))}
    flat = [lut.get(int(v), -1) for v in np.asarray(int_w).ravel()]
    fields = np.array(flat, dtype=np.int64).reshape(np.shape(int_w))
    if (fields < 0).any():
        bad = sorted({int(v) for v in np.asarray(int_w).ravel() if int(v) not in lut})
        raise ExportError(f"{wtype}: integer weights {bad[:5]} are not levels of the type")
    return fields


def pack(int_w: np.ndarray, wtype: str) -> np.ndarray:
    """(out, n) integer weights -> (out, ceil(n / per_word)) uint32 words."""
    f = encode(int_w, wtype)
    out, n = f.shape
    per = PER_WORD[wtype]
    wpr = -(-n // per)
    if wtype == "Ternary":                      # 5 trits -> byte, then 4 bytes per word
        f = np.pad(f, ((0, 0), (0, wpr * 20 - n))).reshape(out, wpr * 4, 5)
        f = f @ np.array([81, 27, 9, 3, 1])     # (out, bytes)
        bits, per = 8, 4
    else:
        bits = 32 // per
        f = np.pad(f, ((0, 0), (0, wpr * per - n)))
    f = f.reshape(out, wpr, per).astype(np.uint64)                 # (out, words, fields)
    shifts = np.array([32 - bits * (j + 1) for j in range(per)], dtype=np.uint64)
    return (f << shifts).sum(axis=2).astype(np.uint32)


def unpack(words: np.ndarray, n: int, wtype: str) -> np.ndarray:
    """(out, words_per_row) uint32 -> (out, n) integer weights (inverse of ``pack``)."""
    per = PER_WORD[wtype]
    values = np.array(field_values(wtype))
    w = np.asarray(words, dtype=np.uint64)
    if wtype == "Ternary":
        b = (w[:, :, None] >> np.array([24, 16, 8, 0], dtype=np.uint64)) & 0xFF
        b = b.reshape(len(w), -1).astype(np.int64)                     # (out, bytes)
        if (b > 242).any():
            raise ExportError("Ternary: packed byte > 242 is not 5 trits")
        t = (b[:, :, None] // np.array([81, 27, 9, 3, 1])) % 3         # (out, bytes, 5)
        return values[t.reshape(len(w), -1)[:, :n]]
    bits = 32 // per
    shifts = np.array([32 - bits * (j + 1) for j in range(per)], dtype=np.uint64)
    f = (w[:, :, None] >> shifts) & np.uint64((1 << bits) - 1)
    return values[f.reshape(len(w), -1)[:, :n].astype(np.int64)]


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
    layout: str = "rows"      # fc: 'rows' (out x in) or 'cols' (transposed, bitnet.h)
    centre: bool = False      # cols, first layer of an FC net: wsum stored for centring

    @property
    def packed(self) -> np.ndarray:
        return pack(self.weights.T if self.layout == "cols" else self.weights, self.wtype)

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


def _int_weights(layer, name: str) -> np.ndarray:
    """(out, row) integer weights of a quantized layer, read from its codes."""
    q = layer.quantizer
    if q.name not in TYPE_IDS:
        raise ExportError(f"layer {name}: weight type {q.name!r} has no C kernel (the engine "
                          f"has {', '.join(TYPE_IDS)}); train or PTQ-quantize to one of them")
    codes = layer.weight_codes().cpu().numpy()
    w = np.asarray(q.int_levels, dtype=np.int64)[codes]
    return w.reshape(w.shape[0], -1)                                   # (out, in) or (C, 9)


def _conv_spec(m: BitConv2d, name: str, first: bool, side: int) -> LayerSpec:
    ok = (m.kernel_size == (3, 3) and m.stride == (1, 1) and m.padding == (0, 0)
          and m.dilation == (1, 1) and m.bias is None)
    depthwise = m.groups == m.in_channels == m.out_channels
    if not ok or (first and m.in_channels != 1) or (not first and not depthwise):
        raise ExportError(f"layer {name}: the engine runs a 1-channel 3x3 conv first, then "
                          f"depthwise 3x3 (stride 1, no padding, no bias); got {m}")
    return LayerSpec(name, "conv" if first else "dw", m.quantizer.name, side, m.out_channels,
                     _int_weights(m, name))


def _check_width(spec: LayerSpec):
    for what, v in (("in", spec.n_in), ("out", spec.n_out)):
        if not 0 < v <= MAX_WIDTH:
            raise ExportError(f"layer {spec.name}: {what} width {v} cannot be packed "
                              f"(the engine takes 1..{MAX_WIDTH})")


def model_layers(model: nn.Module, side: int = 16) -> list:
    """The model's layers as LayerSpecs (shifts of conv layers still 0)."""
    specs, relu_after_conv = [], True
    for name, m in model.named_children():
        if isinstance(m, BitConv2d):
            if specs and specs[-1].kind == "fc" or not relu_after_conv:
                raise ExportError(f"layer {name}: a conv must follow conv+ReLU or the input")
            specs.append(_conv_spec(m, name, not specs, side))
            side, relu_after_conv = side - 2, False
        elif isinstance(m, nn.ReLU) and specs and specs[-1].kind != "fc":
            relu_after_conv = True
        elif isinstance(m, nn.MaxPool2d) and specs and specs[-1].kind != "fc" and \
                m.kernel_size in (2, (2, 2)) and m.stride in (2, (2, 2)) and side % 2 == 0:
            specs[-1].pool, side = 1, side // 2
        elif isinstance(m, BitLinear):
            if m.relu_input != any(s.kind == "fc" for s in specs) or not relu_after_conv:
                raise ExportError(f"layer {name}: ReLU placement differs from the engine's")
            specs.append(LayerSpec(name, "fc", m.quantizer.name, m.in_features,
                                   m.out_features, _int_weights(m, name)))
        elif not isinstance(m, (nn.Flatten, InputQuant)):
            raise ExportError(f"layer {name}: the engine has no {type(m).__name__} layer")
    if not specs or specs[-1].kind != "fc":
        raise ExportError("the model must end in a BitLinear layer")
    fc0 = next(s for s in specs if s.kind == "fc")
    if specs[0].kind != "fc" and fc0.n_in != specs[0].n_out * side * side:
        raise ExportError(f"layer {fc0.name}: {fc0.n_in} inputs, but the conv layers give "
                          f"{specs[0].n_out} x {side} x {side}")
    for s in specs:
        _check_width(s)
    return specs


def calibrate_shifts(layers: list, calib_codes: np.ndarray):
    """Fixed conv shifts: layer by layer, the smallest s with rshift(max acc, s) <=
    CONV_TARGET over the calibration images (2 bits of headroom below int16's 32767;
    larger values on other images saturate, the only rounding the float model lacks
    besides rshift itself)."""
    for i, layer in enumerate(layers):
        if layer.kind == "fc":
            break
        h = intmodel.conv_maps(layers, calib_codes, upto=i)   # (N, C or 1, S, S)
        mx = int(intmodel.conv3x3_acc(h, layer.weights).max())
        layer.shift = 0
        while int(intmodel.rshift(np.int64(mx), layer.shift)) > CONV_TARGET:
            layer.shift += 1


def set_layout(layers: list, layout: str):
    """FC layers of a COLS_TYPES type in the cols layout (``layout='cols'``); the first
    layer of an FC net also gets centring (bitnet.h). Same integers, other order."""
    if layout not in LAYOUTS:
        raise ExportError(f"layout {layout!r}: valid layouts are {', '.join(LAYOUTS)}")
    for i, l in enumerate(layers):
        cols = layout == "cols" and l.kind == "fc" and l.wtype in COLS_TYPES
        l.layout, l.centre = ("cols" if cols else "rows"), cols and i == 0


def export_model(model: nn.Module, calib_x=None, layout: str = "rows") -> Exported:
    """Integer layers of a trained model; a CNN needs calibration images (N, 1, 16, 16).
    ``layout='cols'``: FC weights transposed for the fast kernels (see ``set_layout``)."""
    layers = model_layers(model)
    set_layout(layers, layout)
    if layers[0].kind != "fc":
        if calib_x is None:
            raise ExportError("a CNN needs calibration images to choose its conv shifts")
        calibrate_shifts(layers, intmodel.input_codes(calib_x))
    first = layers[0]
    input_len = first.n_in if first.kind == "fc" else first.n_in ** 2
    exp = Exported(layers, input_len, layers[-1].n_out)
    exp.model_id = exp.fingerprint()
    return exp


def _c_array(words: np.ndarray, per_line: int = 6) -> str:
    flat = [f"0x{int(w):08X}u" for w in words.ravel()]
    return "\n".join("    " + ", ".join(flat[i:i + per_line]) + ","
                     for i in range(0, len(flat), per_line))


def symbol(exp: Exported) -> str:
    return f"bn_model_{exp.model_id:08x}"


def header_text(exp: Exported, source: str = "") -> str:
    p, sym = f"bn_{exp.model_id:08x}", symbol(exp)
    doc = __doc__.split("PACKING", 1)[1].split(">>>", 1)[0].rstrip()
    lines = [f"/* Generated by `bitnet export` from {source or 'a model'}; do not edit.",
             f" * model_id 0x{exp.model_id:08X}; symbol {sym}",
             " * layers (kind type in out shift pool words):"]
    lines += [f" *   {l.name}: {l.kind} {l.wtype} {l.n_in} {l.n_out} {l.shift} {l.pool} "
              f"{l.packed.size}" + (f" ({l.layout}{', centred' if l.centre else ''})"
                                    if l.layout != "rows" else "") for l in exp.layers]
    lines += [" *", " * PACKING" + doc.replace("\n", "\n * ").replace(" * \n", " *\n"),
              " */", f"#ifndef BN_MODEL_{exp.model_id:08X}_H", f"#define BN_MODEL_{exp.model_id:08X}_H",
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(header_text(exp, source))
    os.replace(tmp, path)
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


CALIB_IMAGES = 1000          # first N training images choose a CNN's conv shifts


def load_model_file(run_dir):
    """(cfg, model) of a run; an unreadable model.pt is a clear ExportError."""
    from .train import load_run
    path = Path(run_dir) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (bitnet train)")
    try:
        return load_run(run_dir)
    except Exception as e:
        raise ExportError(f"{path}: cannot read the model file ({type(e).__name__}: {e})") from e


def check_deployable(cfg, source="run") -> None:
    """Refuse training options the engine does not implement (research-plan chapters),
    instead of exporting a header that computes something else than the trained model."""
    from .models import layer_quants
    if cfg.norm != "rmsnorm":
        raise ExportError(f"{source}: norm={cfg.norm!r}, but the engine implements only "
                          f"RMSNorm (ShiftNorm); retrain with norm: rmsnorm to deploy")
    if cfg.act_quant != "absmax" or cfg.act_bits != 8:
        raise ExportError(f"{source}: act_quant={cfg.act_quant!r}, act_bits={cfg.act_bits}, "
                          f"but the engine uses 8-bit activations scaled by ShiftNorm "
                          f"(act_quant: absmax, act_bits: 8)")
    no_zero = sorted({q for q in layer_quants(cfg) if 0.0 not in
                      [float(v) for v in get_quantizer(q).levels]})
    if cfg.prune != "none" and no_zero:
        raise ExportError(f"{source}: prune={cfg.prune!r}, but weight type(s) {no_zero} have "
                          f"no zero level: pruned weights would be exported as the smallest non-zero level")


def export_run(run_dir, data=None, layout: str = "rows"):
    """(cfg, model, Exported) of a run; a CNN's shifts come from the first CALIB_IMAGES
    training images (``data``: MnistTensors, loaded if needed)."""
    cfg, model = load_model_file(run_dir)
    check_deployable(cfg, str(run_dir))
    calib = None
    if cfg.model == "cnn":
        if data is None:
            from .data import load_mnist
            data = load_mnist(cfg.data_root or None, train_subset=CALIB_IMAGES)
        calib = data.train_x[:CALIB_IMAGES]
    return cfg, model, export_model(model, calib, layout)


def format_packed(exp: Exported) -> str:
    rows = packed_stats(exp)
    lines = [f"Packed {r['name']}: {r['kind']} {r['type']}, {r['n_weights']} weights -> "
             f"{r['packed_bytes']} bytes ({r['bits_per_weight']:.3f} bits/weight)" for r in rows]
    total = sum(r["packed_bytes"] for r in rows)
    lines.append(f"Packed total: {total} bytes ({total / 1024:.2f} KiB) in uint32 words, "
                 f"model_id 0x{exp.model_id:08X}")
    return "\n".join(lines)
