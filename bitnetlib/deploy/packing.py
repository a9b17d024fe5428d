"""Integer weights <-> packed uint32 words (numpy only).

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
    4p6       9      8     f - 7 (f 0..14; field 15 is no level: 4 bits for 15 levels,
                           since base-15 fits no more than 8 per word either)

(ids, fields per word and field values: ``bitnetlib.wtypes``.)

>>> pack(np.array([[-15, 1, 3, 15, -1, -3, 13, 7]]), "4bitsym")[0].tolist() == [0x089F76EB]
True
>>> hex(int(pack(np.array([[1, 0, -1, -1, 1]]), "Ternary")[0, 0]))
'0xbf000000'
"""
import numpy as np

from ..wtypes import weight_type


class ExportError(ValueError):
    """A model, header or weight matrix that the engine cannot take."""


def field_values(wtype: str) -> list:
    """Integer weight of every field value f of a type (ternary: of every trit)."""
    try:
        return list(weight_type(wtype).fields)
    except ValueError as e:
        raise ExportError(str(e)) from None


def per_word(wtype: str) -> int:
    return weight_type(wtype).per_word


def packed_bytes(n_rows: int, n: int, wtype: str) -> int:
    """Bytes of ``n_rows`` rows of ``n`` weights as ``pack`` writes them: each row in
    ``ceil(n / per_word)`` uint32 words (padding included), known without the weights.

    >>> packed_bytes(64, 256, "4bitsym"), packed_bytes(64, 256, "Ternary")
    (8192, 3328)
    """
    return 4 * n_rows * -(-n // per_word(wtype))


def encode(int_w: np.ndarray, wtype: str) -> np.ndarray:
    """Integer weights -> field values (int64, same shape); an unencodable value is an error."""
    lut = {v: f for f, v in enumerate(field_values(wtype))}
    flat = [lut.get(int(v), -1) for v in np.asarray(int_w).ravel()]
    fields = np.array(flat, dtype=np.int64).reshape(np.shape(int_w))
    if (fields < 0).any():
        bad = sorted({int(v) for v in np.asarray(int_w).ravel() if int(v) not in lut})
        raise ExportError(f"{wtype}: integer weights {bad[:5]} are not levels of the type")
    return fields


def _shifts(bits: int, per: int) -> np.ndarray:
    return np.array([32 - bits * (j + 1) for j in range(per)], dtype=np.uint64)


def pack(int_w: np.ndarray, wtype: str) -> np.ndarray:
    """(out, n) integer weights -> (out, ceil(n / per_word)) uint32 words."""
    f = encode(int_w, wtype)
    out, n = f.shape
    per = per_word(wtype)
    wpr = -(-n // per)
    if wtype == "Ternary":                      # 5 trits -> byte, then 4 bytes per word
        f = np.pad(f, ((0, 0), (0, wpr * 20 - n))).reshape(out, wpr * 4, 5)
        f = f @ np.array([81, 27, 9, 3, 1])     # (out, bytes)
        bits, per = 8, 4
    else:
        bits = 32 // per
        f = np.pad(f, ((0, 0), (0, wpr * per - n)))
    f = f.reshape(out, wpr, per).astype(np.uint64)                 # (out, words, fields)
    return (f << _shifts(bits, per)).sum(axis=2).astype(np.uint32)


def unpack(words: np.ndarray, n: int, wtype: str) -> np.ndarray:
    """(out, words_per_row) uint32 -> (out, n) integer weights (inverse of ``pack``)."""
    values = np.array(field_values(wtype))
    w = np.asarray(words, dtype=np.uint64)
    if wtype == "Ternary":
        b = (w[:, :, None] >> np.array([24, 16, 8, 0], dtype=np.uint64)) & 0xFF
        b = b.reshape(len(w), -1).astype(np.int64)                     # (out, bytes)
        if (b > 242).any():
            raise ExportError("Ternary: packed byte > 242 is not 5 trits")
        t = (b[:, :, None] // np.array([81, 27, 9, 3, 1])) % 3         # (out, bytes, 5)
        return values[t.reshape(len(w), -1)[:, :n]]
    per = per_word(wtype)
    bits = 32 // per
    f = (w[:, :, None] >> _shifts(bits, per)) & np.uint64((1 << bits) - 1)
    f = f.reshape(len(w), -1)[:, :n].astype(np.int64)
    if (f >= len(values)).any():                # 4p6: 15 levels in 16 field values
        raise ExportError(f"{wtype}: packed field {int(f.max())} is not a level "
                          f"(fields 0..{len(values) - 1})")
    return values[f]
