"""Per-layer statistics of an exported model's weight codes (numpy only): how much of
each type's capacity the weights use, and what entropy coding would save.

Read from the exported integer weights (``Exported.layers[i].weights``), i.e. from
exactly what the header stores; a code is a packed field value (``packing.encode``),
so every type's histogram has one bin per level (Ternary: 3).

>>> h = np.array([6, 2, 0, 0])
>>> round(entropy_bits(h), 4), codes_used(h)
(0.8113, 2)
>>> entropy_bits(np.array([0, 5]))
0.0
"""
import math

import numpy as np

from ..wtypes import weight_type
from . import huffman, packing


def entropy_bits(hist) -> float:
    """Shannon entropy in bits per symbol of a histogram of counts."""
    hist = np.asarray(hist, dtype=np.float64)
    if hist.ndim != 1 or (hist < 0).any() or hist.sum() <= 0:
        raise ValueError(f"histogram: expected 1-d non-negative counts with a positive sum, "
                         f"got {hist.tolist()[:8]}")
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum()) + 0.0


def codes_used(hist) -> int:
    return int((np.asarray(hist) > 0).sum())


def histogram(layer) -> np.ndarray:
    """Counts of every field value of a layer (``LayerSpec``), in field order."""
    n = len(packing.field_values(layer.wtype))
    return np.bincount(packing.encode(layer.weights, layer.wtype).ravel(), minlength=n)


def layer_stats(exp, max_len: int = huffman.MAX_LEN) -> list:
    """Per layer: weights, packed bytes, the type's storage bits and log2(levels), the
    codes' entropy, share of codes used, and the Huffman code's bytes (stream, table)
    against the packed bytes and the entropy bound (entropy x weights / 8)."""
    rows = []
    for l in exp.layers:
        hist, wt = histogram(l), weight_type(l.wtype)
        n, packed = int(l.weights.size), int(l.packed.size * 4)
        coded = huffman.encode_fields(packing.encode(l.weights, l.wtype), len(hist), max_len)
        h = entropy_bits(hist)
        rows.append(dict(
            layer=l.name, type=l.wtype, n_weights=n, packed_bytes=packed,
            type_bits=wt.bits, level_bits=math.log2(len(hist)), entropy=h,
            capacity_used=h / math.log2(len(hist)), codes_used=codes_used(hist),
            n_codes=len(hist), entropy_bytes=h * n / 8, huffman_bits=coded.n_bits / n,
            huffman_stream_bytes=coded.stream_bytes, huffman_table_bytes=coded.table.nbytes,
            huffman_bytes=coded.total_bytes, huffman_max_len=coded.table.max_len,
            saved_bytes=packed - coded.total_bytes))
    return rows


def totals(rows: list) -> dict:
    """The model's sums of ``layer_stats`` rows (bytes, weights) and its mean bits."""
    keys = ("n_weights", "packed_bytes", "entropy_bytes", "huffman_stream_bytes",
            "huffman_table_bytes", "huffman_bytes", "saved_bytes")
    out = {k: sum(r[k] for r in rows) for k in keys}
    out["entropy"] = 8 * out["entropy_bytes"] / out["n_weights"]
    out["huffman_bits"] = 8 * out["huffman_stream_bytes"] / out["n_weights"]
    out["saved_share"] = out["saved_bytes"] / out["packed_bytes"]
    return out
