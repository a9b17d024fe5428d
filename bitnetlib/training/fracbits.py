"""Real-valued bit widths for cyclic precision: ``quant_cycle`` entries that are numbers.

Fake quantization needs a level count, not a whole number of bits: a width of ``b``
bits is the uniform grid of ``n = round(2 ** b)`` levels, symmetric about zero, one
step apart, clipped at ``edge = n / 2`` steps:

- odd ``n``: the integers -(n-1)/2 ... (n-1)/2, zero included (n = 3 is Ternary),
- even ``n``: the half-integers +-0.5 ... +-(n-1)/2, no zero (4 is 2bitsym, 16 is 4bitsym).

So 2 and 4 bits are exactly 2bitsym and 4bitsym, log2(3) bits is Ternary, and 2.5 bits
is 6 levels; 8 bits is 256 half-integer levels, not the ``8bit`` type (integers
-128 ... 127). These grids only train (fake quantization): a schedule ends at its
``quant``, a type of the engine. The activations' fractional widths are
``quant.quantize_activations``'s (the odd count 2 * ((round(2 ** b) - 1) // 2) + 1).

>>> [n_levels(b) for b in (1, 1.585, 2, 2.5, 3, 3.5, 4)]
[2, 3, 4, 6, 8, 11, 16]
>>> q = quantizer_for(2.5); q.name, q.levels, q.edge
('6-level', (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5), 3.0)
>>> q.fake_quant(torch.tensor([-9.0, -0.2, 0.7, 2.2]), 3.0).tolist()
[-2.5, -0.5, 0.5, 2.5]
>>> quantizer_for(2.3).levels          # round(2 ** 2.3) = 5: odd, zero included
(-2.0, -1.0, 0.0, 1.0, 2.0)
"""
import math
import re

import torch

from .quant import WeightQuantizer, get_quantizer

BITS_RANGE = (1.0, 8.0)          # 2 .. 256 levels


def n_levels(bits: float) -> int:
    """round(2 ** bits): the level count of a real-valued bit width."""
    return int(round(2 ** bits))


class LevelGrid(WeightQuantizer):
    """``n`` uniform levels one step apart, symmetric about zero, clip at n/2 steps."""
    uniform = True

    def __init__(self, n: int):
        if n < 2:
            raise ValueError(f"a level grid needs at least 2 levels, got {n}")
        self.n, self.name = n, f"{n}-level"
        self.bits, self.edge = math.log2(n), n / 2
        self.levels = tuple(float(i - (n - 1) / 2) for i in range(n))
        super().__init__()

    def __repr__(self):
        return f"LevelGrid({self.n})"

    def _index(self, v):
        return torch.floor(v + self.n / 2).clamp_(0, self.n - 1).long()

    def _values(self, v):
        return torch.floor(v + self.n / 2).clamp_(0, self.n - 1).sub_((self.n - 1) / 2)

    @property
    def int_levels(self) -> tuple:
        raise ValueError(f"weight type {self.name!r} (a fractional bit width) only trains: "
                         f"it has no integer weights in the engine")


def is_bit_width(entry) -> bool:
    """A number (not a bool): a real-valued bit width in a cycle."""
    return isinstance(entry, (int, float)) and not isinstance(entry, bool)


def quantizer_for(entry) -> WeightQuantizer:
    """The quantizer of a cycle entry: a bit width (number), a level grid's name
    ('6-level', as the metrics log it) or a weight type's name."""
    if is_bit_width(entry):
        return LevelGrid(n_levels(entry))
    m = re.fullmatch(r"(\d+)-level", str(entry))
    return LevelGrid(int(m.group(1))) if m else get_quantizer(entry)
