"""Canonical Huffman coding of a layer's weight fields (numpy only).

The encoder of the format that ``c_engine/bn_huffman.c`` decodes (its contract is in
``c_engine/bn_huffman.h``), and a reference decoder in Python. A symbol is a packed
field value of the layer's type (``packing.encode``: 0 .. 2^bits - 1; Ternary: the
trit 0..2), so the decoder's output indexes the type's field table directly.

FORMAT. One table and one bit stream per layer.
    code lengths   optimal under a length limit (package-merge), at most
                   ``max_len`` <= MAX_LEN bits; a layer with one symbol gets the 1-bit
                   code 0 (the decoder reads one bit per weight)
    codes          canonical: symbols sorted by (length, value) take consecutive codes,
                   the first code of each length is (last of the previous + 1) << 1
    table          count[l - 1] codes of length l (uint16, l = 1..max_len) and the
                   symbols in canonical order (uint8)
    stream         the weights' codes in row order (out rows of in weights), MSB
                   first, packed into uint32 words from the top bit; the last word's
                   unused low bits are zero

Bytes counted for a layer (what the decoder needs in flash on RV32): the stream's words,
the table struct (12 bytes: two pointers and max_len, padded), the count array and
the symbol array, each rounded up to a whole word.

>>> lens = code_lengths([5, 1, 1, 2])
>>> lens
[1, 3, 3, 2]
>>> t = Table.from_lengths(lens)
>>> t.count, t.symbols
([1, 1, 2], [0, 3, 1, 2])
>>> words, n_bits = encode([0, 3, 1, 2, 0], t)
>>> n_bits, hex(int(words[0]))
(10, '0x5b800000')
>>> decode(words, t, 5)
[0, 3, 1, 2, 0]
"""
from collections import Counter
from dataclasses import dataclass

import numpy as np

MAX_LEN = 15                # BN_HUFF_MAX_LEN in c_engine/bn_huffman.h
TABLE_STRUCT_BYTES = 12     # sizeof(bn_huff_table) on RV32 (2 pointers, uint8, padding)


class HuffmanError(ValueError):
    """Symbols, counts or a code length limit that cannot be coded."""


def _ceil4(n: int) -> int:
    return -(-n // 4) * 4


def code_lengths(counts, max_len: int = MAX_LEN) -> list:
    """Code length of every symbol (0: unused) minimizing the coded bits with no code
    longer than ``max_len`` (package-merge; with no binding limit, Huffman's cost)."""
    counts = [int(c) for c in counts]
    used = sorted((c, s) for s, c in enumerate(counts) if c > 0)
    if any(c < 0 for c in counts):
        raise HuffmanError(f"symbol counts must be >= 0, got {min(counts)}")
    if not 1 <= max_len <= MAX_LEN:
        raise HuffmanError(f"max_len={max_len}: the decoder takes 1..{MAX_LEN}")
    if not used:
        raise HuffmanError("no symbol to code: every count is 0")
    if len(used) > 2 ** max_len:
        raise HuffmanError(f"max_len={max_len}: {len(used)} symbols need codes of at least "
                           f"{(len(used) - 1).bit_length()} bits")
    lengths = [0] * len(counts)
    if len(used) == 1:
        lengths[used[0][1]] = 1
        return lengths
    leaves = [(c, Counter({s: 1})) for c, s in used]
    items = list(leaves)
    for _ in range(max_len - 1):                 # package pairs, merge with the leaves
        packages = [(items[i][0] + items[i + 1][0], items[i][1] + items[i + 1][1])
                    for i in range(0, len(items) - 1, 2)]
        items = sorted(leaves + packages, key=lambda it: it[0])
    for _, symbols in items[:2 * len(used) - 2]:
        for s, k in symbols.items():
            lengths[s] += k
    return lengths


@dataclass
class Table:
    """A canonical code: ``count[l - 1]`` codes of length l, ``symbols`` in canonical
    order, ``lengths[s]`` of every symbol (0: none)."""
    count: list
    symbols: list
    lengths: list

    @classmethod
    def from_lengths(cls, lengths) -> "Table":
        lengths = [int(n) for n in lengths]
        if not any(lengths) or max(lengths) > MAX_LEN or min(lengths) < 0:
            raise HuffmanError(f"code lengths must be 0..{MAX_LEN}, some > 0; got {lengths}")
        max_len = max(lengths)
        count = [sum(1 for n in lengths if n == l) for l in range(1, max_len + 1)]
        if sum(c << (max_len - l) for l, c in enumerate(count, 1)) > 1 << max_len:
            raise HuffmanError(f"code lengths {lengths} are over-subscribed (Kraft sum > 1)")
        symbols = sorted((s for s, n in enumerate(lengths) if n), key=lambda s: (lengths[s], s))
        return cls(count, symbols, lengths)

    @property
    def max_len(self) -> int:
        return len(self.count)

    @property
    def nbytes(self) -> int:
        """Flash bytes of the table: struct, counts and symbols, each word-aligned."""
        return TABLE_STRUCT_BYTES + _ceil4(2 * self.max_len) + _ceil4(len(self.symbols))

    def codes(self) -> dict:
        """{symbol: (code, length)} of the canonical code."""
        out, code, i = {}, 0, 0
        for l, c in enumerate(self.count, 1):
            for s in self.symbols[i:i + c]:
                out[s] = (code, l)
                code += 1
            i += c
            code <<= 1
        return out


def encode(symbols, table: Table):
    """(uint32 words, bits) of the symbols' codes, MSB first (see FORMAT)."""
    codes = table.codes()
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    bad = sorted({int(s) for s in np.unique(symbols)} - set(codes))
    if bad:
        raise HuffmanError(f"symbols {bad[:5]} have no code in the table")
    code = np.array([codes.get(s, (0, 0))[0] for s in range(max(codes) + 1)], np.int64)
    length = np.array([codes.get(s, (0, 0))[1] for s in range(max(codes) + 1)], np.int64)
    c, n = code[symbols], length[symbols]
    total = int(n.sum())
    # the k-th stream bit is bit j (from the top) of the code it belongs to
    j = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
    bits = (np.repeat(c, n) >> (np.repeat(n, n) - 1 - j)) & 1
    pos = np.arange(total)
    words = np.zeros(-(-total // 32), np.uint64)
    np.add.at(words, pos >> 5, bits.astype(np.uint64) << (31 - (pos & 31)).astype(np.uint64))
    return words.astype(np.uint32), total


def decode(words, table: Table, n: int) -> list:
    """The first ``n`` symbols of a stream (the reference of bn_huff_decode)."""
    bits = ((np.asarray(words, np.uint64)[:, None] >> np.arange(31, -1, -1, dtype=np.uint64))
            & np.uint64(1)).ravel()
    out, pos = [], 0
    for _ in range(n):
        code = first = index = 0
        for count in table.count:
            if pos >= len(bits):
                raise HuffmanError(f"stream ends after {len(out)} of {n} symbols")
            code |= int(bits[pos])
            pos += 1
            if code - first < count:
                out.append(table.symbols[index + code - first])
                break
            index, first, code = index + count, (first + count) << 1, code << 1
        else:
            raise HuffmanError(f"symbol {len(out)}: bits match no code of the table")
    return out


@dataclass
class Coded:
    """One layer's Huffman code: its table, stream words and bit count."""
    table: Table
    words: np.ndarray
    n_bits: int
    n_symbols: int

    @property
    def stream_bytes(self) -> int:
        return 4 * len(self.words)

    @property
    def total_bytes(self) -> int:
        return self.stream_bytes + self.table.nbytes


def encode_fields(fields, n_fields: int, max_len: int = MAX_LEN) -> Coded:
    """Huffman-code a layer's field values (0..n_fields-1) with their own histogram."""
    fields = np.asarray(fields, dtype=np.int64).ravel()
    if fields.size and (fields.min() < 0 or fields.max() >= n_fields):
        raise HuffmanError(f"field values must be 0..{n_fields - 1}, got "
                           f"{int(fields.min())}..{int(fields.max())}")
    table = Table.from_lengths(code_lengths(np.bincount(fields, minlength=n_fields), max_len))
    words, n_bits = encode(fields, table)
    return Coded(table, words, n_bits, int(fields.size))
