"""Per-channel and asymmetric weight scales (config keys ``weight_scale``, ``weight_zero_point``).

The quantizers of ``quant`` have one clip per tensor and a grid symmetric about zero.
``ScaledQuantizer`` wraps one of the uniform integer grids (``SCALED_TYPES``) and gives it

- one clip per output row (``weight_scale: channel``) instead of one per tensor, and/or
- an integer zero point (``weight_zero_point: asymmetric``): the grid is shifted by a
  whole number of steps, ``offset``, chosen per tensor or per row so that the grid is
  centred on the weights' mean:  ``value = (level + offset) * step``.

Its clip is a (rows, 2) tensor: column 0 the clip (half-width of the grid about its
centre, chosen by ``prop`` or OCTAV on the centred weights), column 1 the offset in
steps (0 when symmetric); rows is 1 per tensor or the layer's output rows. The C engine
has one scale per tensor, folded into ShiftNorm, and no zero point: these layers train
and evaluate in torch but do not export (their type names, such as ``4bitsym+channel``,
are not in the engine's table; chapter 9 counts what the MCU would pay).

>>> from .quant import FourBitSym
>>> q = ScaledQuantizer(FourBitSym(), per_channel=True, asymmetric=True)
>>> w = torch.tensor([[-0.4, 0.0, 0.4, 0.8], [1.0, 1.1, 1.2, 1.3]])
>>> clip = q.choose(w, "prop", 0.25)        # row clips 1.6 and 0.4, offsets 1 and 23 steps
>>> [[round(v, 3) for v in row] for row in clip.tolist()]
[[1.6, 1.0], [0.4, 23.0]]
>>> q.codes(w, clip).tolist()              # both rows use the same 4 of the 16 levels
[[5, 7, 9, 11], [5, 7, 9, 11]]
>>> [[round(v, 3) for v in row] for row in q.fake_quant(w, clip).tolist()]
[[-0.3, 0.1, 0.5, 0.9], [1.025, 1.125, 1.225, 1.325]]

One clip per tensor, symmetric, is the plain quantizer:

>>> p = ScaledQuantizer(FourBitSym()); w = torch.randn(8, 5)
>>> torch.equal(p.fake_quant(w, p.choose(w, "prop", 0.25)), FourBitSym().fake_quant(w, w.abs().mean() / 0.25))
True
"""
import torch

from .layers import BitLinear
from .quant import WeightQuantizer, octav_clip

SCALED_TYPES = ("Ternary", "2bitsym", "4bitsym", "4bit", "8bit")   # uniform integer grids
WEIGHT_SCALES = ("tensor", "channel")
ZERO_POINTS = ("symmetric", "asymmetric")


class ScaledQuantizer(WeightQuantizer):
    """A uniform grid ``base`` with per-row clips and/or an integer zero point (see module)."""

    def __init__(self, base: WeightQuantizer, per_channel: bool = False, asymmetric: bool = False):
        if base.name not in SCALED_TYPES:
            raise ValueError(f"weight type {base.name!r}: per-channel or asymmetric scales need "
                             f"a uniform integer grid, one of {', '.join(SCALED_TYPES)}")
        self.base, self.per_channel, self.asymmetric = base, per_channel, asymmetric
        # a name of its own: not a type of the engine's table, so export refuses it
        self.name = base.name + "+channel" * per_channel + "+asym" * asymmetric
        self.bits, self.edge = base.bits, base.edge
        self.levels, self.uniform = base.levels, base.uniform
        super().__init__()

    def __repr__(self):
        return (f"ScaledQuantizer({self.base!r}, per_channel={self.per_channel}, "
                f"asymmetric={self.asymmetric})")

    @property
    def int_levels(self) -> tuple:
        return self.base.int_levels

    @property
    def int_scale(self) -> int:
        return self.base.int_scale

    def clip_shape(self, n_out: int) -> tuple:
        return (n_out if self.per_channel else 1, 2)

    def step(self, clip):
        """Step of each row, shape (rows, 1)."""
        return clip[:, :1] / self.edge

    @torch.no_grad()
    def codes(self, w, clip):
        v = w.reshape(clip.shape[0], -1) / self.step(clip) - clip[:, 1:]
        return self.base._index(v).reshape(w.shape)

    def dequant(self, codes, clip):
        lv = self._levels.to(codes.device)[codes.reshape(clip.shape[0], -1)]
        return ((lv + clip[:, 1:]) * self.step(clip)).reshape(codes.shape)

    @torch.no_grad()
    def fake_quant(self, w, clip):
        return self.dequant(self.codes(w, clip), clip)

    @torch.no_grad()
    def choose(self, w, method: str, quantscale: float, iters: int = 10) -> torch.Tensor:
        """The (rows, 2) clip of ``w``: the grid centred on each row's mean (asymmetric) or
        on zero, its half-width by ``prop`` (mean|w - centre| / quantscale) or OCTAV."""
        rows = w.detach().reshape(w.shape[0] if self.per_channel else 1, -1)
        centre = rows.mean(1, keepdim=True) if self.asymmetric else torch.zeros_like(rows[:, :1])
        d = rows - centre
        if method == "prop":
            clip = d.abs().mean(1).clamp_min(1e-8) / quantscale
        elif method == "octav":
            clip = torch.stack([octav_clip(r, self.n_levels, iters=iters) for r in d])
        else:
            raise ValueError(f"unknown clip method {method!r}; valid: prop, octav")
        offset = torch.round(centre[:, 0] / (clip / self.edge))
        return torch.stack([clip, offset], 1)


def clip_summary(clip: torch.Tensor) -> float:
    """One number for a layer's clip: itself, or the mean of its per-row clips."""
    return float(clip) if clip.dim() == 0 else float(clip[:, 0].mean())


def scale_linear_layers(model, weight_scale: str, zero_point: str):
    """Give every BitLinear of ``model`` per-channel and/or asymmetric scales (in place);
    the defaults (tensor, symmetric) leave the model as it is."""
    if (weight_scale, zero_point) == ("tensor", "symmetric"):
        return model
    for layer in model.modules():
        if isinstance(layer, BitLinear):
            q = ScaledQuantizer(layer.quantizer, weight_scale == "channel",
                                zero_point == "asymmetric")
            layer.quantizer = q
            layer.clip = torch.zeros(q.clip_shape(layer.out_features))   # a registered buffer
    return model
