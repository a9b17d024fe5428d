"""Weight and activation quantizers: the one definition of every number format.

A weight quantizer maps a float tensor ``w`` and a per-tensor clip value ``clip`` to
one of a fixed set of *levels*. Levels are expressed in units of a *step*::

    step  = clip / edge            (edge: the clip boundary in steps, per type)
    value = levels[code] * step    (code: integer index into ``levels``)

Training uses ``fake_quant`` (the values), export and the integer model use ``codes``
(the indices) and ``int_levels`` (the integer weight each code stands for); neither
recomputes the other: ``dequant(codes(w)) == fake_quant(w)`` exactly, which the tests
check for every type.

The clip value is chosen per tensor, once per epoch, by ``prop`` (mean|w| / quantscale)
or by OCTAV (the clip that minimises the expected quantization MSE), see
``choose_clip``.

| name     | levels (in steps)            | edge | bits/weight |
|----------|------------------------------|------|-------------|
| Binary   | -1, +1  (sign about mean)     | 1    | 1           |
| Ternary  | -1, 0, +1                    | 1.5  | 1.6         |
| 2bitsym  | +-0.5, +-1.5                 | 2    | 2           |
| 4bitsym  | +-0.5 ... +-7.5              | 8    | 4           |
| 4bit     | -8 ... 7                     | 8    | 4           |
| 8bit     | -128 ... 127                 | 128  | 8           |
| FP130    | +-2^e, e = 0..7              | 128  | 4           |
| NF4      | the 16 QLoRA NormalFloat4    | 1    | 4           |
| 4p6      | -7 ... 7 (activations <= 16) | 7.5  | 4           |
| None     | float (no quantization)      | -    | 32          |

Ternary is stored 5 trits per byte, hence 1.6 bits per weight.
"""

import torch

from ..wtypes import TYPES


class WeightQuantizer:
    """Base class: a fixed level set, nearest-level rounding, a clip boundary.

    Subclasses set ``name``, ``bits``, ``edge``, ``levels`` and may override
    ``_index`` with closed-form arithmetic (faster than the generic bucketize).
    """
    name = ""
    bits = 0.0
    edge = 1.0
    levels: tuple = ()
    uniform = True        # evenly spaced levels: OCTAV's noise model applies
    act_max = 127         # largest |activation| code into the layer (wtypes act_max)

    def __init__(self):
        self._levels = torch.tensor(self.levels, dtype=torch.float32)
        self._mids = (self._levels[1:] + self._levels[:-1]) / 2

    def __repr__(self):
        return f"{type(self).__name__}()"

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def levels_tensor(self, device=None) -> torch.Tensor:
        return self._levels.to(device) if device is not None else self._levels

    def step(self, clip):
        return clip / self.edge

    def _index(self, v: torch.Tensor) -> torch.Tensor:
        """Index of the nearest level to ``v`` (in steps); ties go up."""
        return torch.bucketize(v, self._mids.to(v.device), right=True)

    @torch.no_grad()
    def codes(self, w: torch.Tensor, clip) -> torch.Tensor:
        """Integer codes (indices into ``levels``), dtype int64, same shape as ``w``."""
        return self._index(w / self.step(clip))

    def dequant(self, codes: torch.Tensor, clip) -> torch.Tensor:
        return self._levels.to(codes.device)[codes] * self.step(clip)

    def _values(self, v: torch.Tensor):
        """Nearest level of ``v`` (in steps) as a float, or None to use the codes.

        Closed-form types override it: the training hot path avoids the index gather.
        """
        return None

    @torch.no_grad()
    def fake_quant(self, w: torch.Tensor, clip) -> torch.Tensor:
        """Quantized values of ``w`` (float, same shape): equal to ``dequant(codes(w))``."""
        step = self.step(clip)
        v = self._values(w / step)
        return self.dequant(self.codes(w, clip), clip) if v is None else v.mul_(step)

    def prop_clip(self, w: torch.Tensor, quantscale: float) -> torch.Tensor:
        """Clip proportional to the mean magnitude: mean|w| / quantscale."""
        return w.detach().abs().mean().clamp_min(1e-8) / quantscale

    @property
    def int_levels(self) -> tuple:
        """The integer weight each code stands for in the integer engine (wtypes table)."""
        return TYPES[self.name].int_levels

    @property
    def int_scale(self) -> int:
        """int_levels = levels * int_scale (2 for half-integer levels, 127 for NF4)."""
        return TYPES[self.name].int_scale


class Binary(WeightQuantizer):
    """Sign about the tensor mean, scaled by mean|w|.

    >>> q = Binary(); w = torch.tensor([-0.3, 0.1, 0.2, 0.6])
    >>> q.fake_quant(w, q.prop_clip(w, 0.25)).tolist()
    [-0.30000001192092896, -0.30000001192092896, 0.30000001192092896, 0.30000001192092896]
    """
    name, edge = "Binary", 1.0
    bits, levels = TYPES[name].bits, TYPES[name].levels

    @torch.no_grad()
    def codes(self, w, clip):
        return (w >= w.mean()).long()

    def prop_clip(self, w, quantscale):
        # nothing to clip for a sign: the clip is the absmean scale, whatever quantscale
        return w.detach().abs().mean().clamp_min(1e-8)


class Ternary(WeightQuantizer):
    """{-1, 0, 1} times step = clip / 1.5 (three equal bins over [-clip, clip]).

    >>> q = Ternary(); q.fake_quant(torch.tensor([-2.0, -0.4, 0.6, 1.6]), 1.5).tolist()
    [-1.0, 0.0, 1.0, 1.0]
    """
    name, edge = "Ternary", 1.5
    bits, levels = TYPES[name].bits, TYPES[name].levels

    def _values(self, v):
        return torch.floor(v + 0.5).clamp_(-1, 1)

    def _index(self, v):
        return self._values(v).long() + 1


class TwoBitSym(WeightQuantizer):
    """Odd half-integers without zero: +-0.5, +-1.5 steps, step = clip / 2.

    >>> q = TwoBitSym(); q.fake_quant(torch.tensor([-9.0, -0.1, 0.1, 1.2]), 2.0).tolist()
    [-1.5, -0.5, 0.5, 1.5]
    """
    name, edge = "2bitsym", 2.0
    bits, levels = TYPES[name].bits, TYPES[name].levels

    def _values(self, v):
        return torch.floor(v).clamp_(-2, 1).add_(0.5)

    def _index(self, v):
        return torch.floor(v).clamp_(-2, 1).long() + 2


class FourBitSym(WeightQuantizer):
    """Odd half-integers without zero: +-0.5 ... +-7.5 steps, step = clip / 8.

    >>> q = FourBitSym(); q.fake_quant(torch.tensor([-9.0, -0.1, 0.1, 3.2]), 8.0).tolist()
    [-7.5, -0.5, 0.5, 3.5]
    """
    name, edge = "4bitsym", 8.0
    bits, levels = TYPES[name].bits, TYPES[name].levels

    def _values(self, v):
        return torch.floor(v).clamp_(-8, 7).add_(0.5)

    def _index(self, v):
        return torch.floor(v).clamp_(-8, 7).long() + 8


class FourBit(WeightQuantizer):
    """Signed integers -8 ... 7 including zero, step = clip / 8.

    >>> q = FourBit(); q.fake_quant(torch.tensor([-9.0, -0.4, 0.6, 7.9]), 8.0).tolist()
    [-8.0, 0.0, 1.0, 7.0]
    """
    name, edge = "4bit", 8.0
    bits, levels = TYPES[name].bits, TYPES[name].levels

    def _values(self, v):
        return torch.floor(v + 0.5).clamp_(-8, 7)

    def _index(self, v):
        return self._values(v).long() + 8


class EightBit(WeightQuantizer):
    """Signed integers -128 ... 127, step = clip / 128.

    >>> q = EightBit(); q.fake_quant(torch.tensor([-200.0, -0.4, 0.6, 126.7]), 128.0).tolist()
    [-128.0, 0.0, 1.0, 127.0]
    """
    name, edge = "8bit", 128.0
    bits, levels = TYPES[name].bits, TYPES[name].levels

    def _values(self, v):
        return torch.floor(v + 0.5).clamp_(-128, 127)

    def _index(self, v):
        return self._values(v).long() + 128


class FP130(WeightQuantizer):
    """Sign times a power of two, 2^0 ... 2^7 steps (no zero), step = clip / 128.

    Rounds to the nearest level (arithmetic midpoints, 1.5 * 2^e).

    >>> q = FP130(); q.fake_quant(torch.tensor([-300.0, -0.2, 2.9, 3.1]), 128.0).tolist()
    [-128.0, -1.0, 2.0, 4.0]
    """
    name, edge, uniform = "FP130", 128.0, False
    bits, levels = TYPES[name].bits, TYPES[name].levels


class NF4(WeightQuantizer):
    """QLoRA NormalFloat4: 16 levels in [-1, 1] placed at normal quantiles, step = clip.

    >>> q = NF4(); q.fake_quant(torch.tensor([-2.0, 0.01, 0.55, 0.9]), 1.0).tolist()
    [-1.0, 0.0, 0.5626170039176941, 1.0]
    """
    name, edge, uniform = "NF4", 1.0, False
    bits, levels = TYPES[name].bits, TYPES[name].levels


class FourP6(WeightQuantizer):
    """4.6-bit (Trusov et al. 2024; wtypes.py: why 15 x 17): -7 ... 7, step = clip / 7.5;
    its layers take activations in -16..16 (``act_max``): every product fits int8.
    >>> q = FourP6(); q.fake_quant(torch.tensor([-9.0, -0.4, 0.6, 7.4]), 7.5).tolist(), q.act_max
    ([-7.0, 0.0, 1.0, 7.0], 16)
    """
    name, edge = "4p6", 7.5
    bits, levels, act_max = TYPES[name].bits, TYPES[name].levels, TYPES[name].act_max

    def _values(self, v):
        return torch.floor(v + 0.5).clamp_(-7, 7)

    def _index(self, v):
        return self._values(v).long() + 7


class NoQuant(WeightQuantizer):
    """Float weights: ``fake_quant`` is the identity; there are no codes."""
    name, bits, edge, uniform, levels = "None", 32.0, 1.0, False, ()

    def __init__(self):
        pass

    @torch.no_grad()
    def fake_quant(self, w, clip):
        return w

    def codes(self, w, clip):
        raise ValueError("quant type 'None' has no integer codes: train or PTQ-quantize "
                         "the model to a weight type first")


QUANTIZERS = {q.name: q for q in (Binary, Ternary, TwoBitSym, FourBitSym, FourBit,
                                  EightBit, FP130, NF4, FourP6, NoQuant)}


def get_quantizer(name: str) -> WeightQuantizer:
    """The quantizer for a type name, e.g. ``get_quantizer('4bitsym')``."""
    if name not in QUANTIZERS:
        raise ValueError(f"unknown weight type {name!r}; valid: {', '.join(QUANTIZERS)}")
    return QUANTIZERS[name]()


# ---------------------------------------------------------------- activations

def quantize_activations(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per-row (per-token) absmax fake quantization to signed ``bits``-bit integers
    -qmax .. qmax, qmax = (round(2^bits) - 1) // 2: 2^(bits-1) - 1 for whole bits, and
    real-valued widths (cyclic precision, training.fracbits) get an odd level count.

    >>> quantize_activations(torch.tensor([[0.5, -1.0, 0.25]])).tolist()
    [[0.5039370059967041, -1.0, 0.25196850299835205]]
    """
    qmax = (round(2 ** bits) - 1) // 2
    scale = qmax / x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-5)
    return (x * scale).round().clamp(-qmax - 1, qmax) / scale


# ---------------------------------------------------------------- clipping

def octav_clip(w: torch.Tensor, n_levels: int, s0=None, iters: int = 10) -> torch.Tensor:
    """OCTAV (Sakr et al. 2022): the clip s minimising the expected MSE of a uniform
    quantizer with ``n_levels`` bins over [-s, s],

        J(s) = N(|w| <= s) * s^2 / (3 L^2)  +  sum_{|w| > s} (|w| - s)^2,

    by the fixed-point (Newton) iteration s <- sum_{|w|>s}|w| / (N_<= / (3 L^2) + N_>).
    Like the paper's, the recursion treats N_<= as constant in s; on a Gaussian this
    lands within 0.5 % of the brute-force argmin of J from 4 bits up, and 4 % above it
    for ternary (costing < 1 % in J).

    >>> w = torch.randn(100000, generator=torch.Generator().manual_seed(0))
    >>> round(float(octav_clip(w, 16) / w.std()), 1)   # ~2.55 sigma for 4 bit (Banner et al.)
    2.6
    """
    a = w.detach().abs().flatten()
    noise = 1.0 / (3.0 * n_levels ** 2)
    s = a.mean() * 3.0 if s0 is None else torch.as_tensor(s0, dtype=a.dtype)
    for _ in range(iters):
        over = a > s
        denom = noise * (~over).sum() + over.sum()
        s = (a * over).sum() / denom.clamp_min(1)
    return s.clamp_min(1e-8)


def mse_optimal_clip(w: torch.Tensor, quantizer: WeightQuantizer, n_grid: int = 200):
    """Clip minimising the true quantization MSE, by grid search (non-uniform types)."""
    w = w.detach().flatten()
    amax = w.abs().max().clamp_min(1e-8)
    grid = amax * torch.linspace(0.05, 1.0, n_grid)
    errs = torch.stack([(quantizer.fake_quant(w, s) - w).pow(2).mean() for s in grid])
    return grid[int(errs.argmin())]


def choose_clip(w, quantizer: WeightQuantizer, method: str, quantscale: float, prev=None,
                iters: int = 10):
    """The per-tensor clip by ``method``: 'prop' or 'octav' (see module docstring)."""
    if method == "prop" or isinstance(quantizer, (NoQuant, Binary)):
        return quantizer.prop_clip(w, quantscale)
    if method == "octav":
        if quantizer.uniform:
            return octav_clip(w, quantizer.n_levels, s0=prev, iters=iters)
        return mse_optimal_clip(w, quantizer)
    raise ValueError(f"unknown clip method {method!r}; valid: prop, octav")
