"""The weight types: the one table both stages read (no torch, no numpy).

Training (``training/quant.py``: levels, bits) and deployment (``deploy/packing.py``:
type ids, fields per word, field values, the fast column kernels) take every fact
about a type from here. The C engine's side of the same table (``bn_wtype`` in
c_engine/bitnet.h, ``bn_per_word``, the unpacking switches, ``bn_fc_cols``) is held
equal to it by tests/test_wtypes.py, which fails when either side drifts.

    name     id  bits  per_word  levels (steps)         integer weight  cols kernel
    Binary    1   1      32      -1, +1                 level            yes
    Ternary   2   1.6    20      -1, 0, +1              level            yes
    2bitsym   3   2      16      +-0.5, +-1.5           2 x level        yes
    4bitsym   4   4       8      +-0.5 ... +-7.5        2 x level        yes
    4bit      5   4       8      -8 ... 7               level            yes
    8bit      6   8       4      -128 ... 127           level            no
    FP130     7   4       8      +-2^e, e = 0..7        level            yes
    NF4       8   4       8      QLoRA NormalFloat4     round(127 x l)   yes
    4p6       9   4       8      -7 ... 7 (15 levels)   level            yes

A layer's input activations are int8 (-127..127, hidden ones 0..127) unless its type has
a smaller ``act_max``: then the layer first brings them into -act_max..act_max by the
signed ShiftNorm rule (deploy/intmodel.py ``act_limit``, bn_act_limit in C). 4p6 is the
4.6-bit scheme of Trusov et al. (Mathematics 2024, 12(5), 651): odd level counts chosen
so every weight x activation product fits int8, multiplication by a table of products.
The paper's pair is 31 weight levels x 17 signed activation levels (|w| <= 15,
|a| <= 8, |w a| <= 120). Our hidden activations come out of a ReLU, so a signed -8..8
range would leave 8 of its 17 levels unused; we keep the 17 activation levels on the
non-negative side (0..16; the signed network input takes -16..16) and the product
budget then allows |w| <= 7: 15 weight levels, |w a| <= 112. The other int8 pair,
31 x 9 (|w| <= 15, a 0..8), needs 5-bit fields (6 per word, 5.33 bits a weight): the
64/64/64 FC net would take 17.1 KB of weights, over the CH32V003's 16 KB of flash.
15 levels pack in 4-bit fields (field 15 is invalid), so 4p6 costs the bytes of 4bitsym.

A packed field f stands for ``fields[f]``; for every type but FP130 that is the f-th
integer level (ascending); FP130 packs sign << 3 | e.

>>> TYPES["4bitsym"].int_levels[:3], TYPES["FP130"].fields[:3], TYPES["FP130"].fields[8]
((-15, -13, -11), (1, 2, 4), -1)
>>> TYPE_IDS["NF4"], TYPES["NF4"].int_levels[-2:]
(8, (92, 127))
>>> len(TYPES["4p6"].levels), TYPES["4p6"].act_max * max(TYPES["4p6"].int_levels)
(15, 112)
"""
from dataclasses import dataclass

NF4_LEVELS = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230850220947, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)


@dataclass(frozen=True)
class WeightType:
    name: str
    id: int                   # bn_wtype in c_engine/bitnet.h
    bits: float               # storage bits per weight
    per_word: int             # packed fields per uint32 word
    levels: tuple             # quantization levels in units of the step, ascending
    int_scale: int = 1        # integer weight = round(level * int_scale)
    cols: bool = False        # has a cols-layout (fast) kernel, bn_fc_cols
    field_order: tuple = ()   # code index of each field value; () = the codes' order
    act_max: int = 127        # largest |activation| into a layer of this type (bn_act_max)

    @property
    def int_levels(self) -> tuple:
        """The integer weight each code (index into ``levels``) stands for."""
        return tuple(int(round(v * self.int_scale)) for v in self.levels)

    @property
    def fields(self) -> tuple:
        """The integer weight of every packed field value (ternary: of every trit)."""
        ints = self.int_levels
        return tuple(ints[c] for c in self.field_order) if self.field_order else ints


_FP130_LEVELS = tuple([-(2.0 ** e) for e in range(7, -1, -1)] + [2.0 ** e for e in range(8)])
# FP130 field sign << 3 | e: e = 0..7 -> codes 8..15 (+2^e), then 7..0 (-2^e)
_FP130_FIELDS = tuple(range(8, 16)) + tuple(range(7, -1, -1))

TYPES = {t.name: t for t in (
    WeightType("Binary", 1, 1.0, 32, (-1.0, 1.0), cols=True),
    WeightType("Ternary", 2, 1.6, 20, (-1.0, 0.0, 1.0), cols=True),
    WeightType("2bitsym", 3, 2.0, 16, (-1.5, -0.5, 0.5, 1.5), int_scale=2, cols=True),
    WeightType("4bitsym", 4, 4.0, 8, tuple(k + 0.5 for k in range(-8, 8)), int_scale=2,
               cols=True),
    WeightType("4bit", 5, 4.0, 8, tuple(float(k) for k in range(-8, 8)), cols=True),
    WeightType("8bit", 6, 8.0, 4, tuple(float(k) for k in range(-128, 128))),
    WeightType("FP130", 7, 4.0, 8, _FP130_LEVELS, cols=True, field_order=_FP130_FIELDS),
    WeightType("NF4", 8, 4.0, 8, NF4_LEVELS, int_scale=127, cols=True),
    WeightType("4p6", 9, 4.0, 8, tuple(float(k) for k in range(-7, 8)), cols=True,
               act_max=16),
)}
TYPE_IDS = {t.name: t.id for t in TYPES.values()}
COLS_TYPES = tuple(t.name for t in TYPES.values() if t.cols)


def weight_type(name: str) -> WeightType:
    """The table entry of a type that the C engine runs; a clear error otherwise."""
    if name not in TYPES:
        raise ValueError(f"weight type {name!r} has no C kernel; valid: {', '.join(TYPES)}")
    return TYPES[name]
