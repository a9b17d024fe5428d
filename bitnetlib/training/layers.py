"""Quantization-aware layers: BitLinear (RMSNorm, 8-bit activations) and BitConv2d.

Both take a ``WeightQuantizer`` as an argument and keep their per-tensor clip value in
a buffer (``clip``), set once per epoch by ``update_clip``. Gradients pass the
quantizers straight through (STE): d loss / d w = d loss / d w_q, and the same for
the activations.

BitLinear's forward and backward are written out by hand in one autograd Function
(RMSNorm -> absmax int8 fake quantization -> matmul): it is the hot loop of training,
and one node instead of a dozen halves the per-step overhead on a CPU.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .actlimit import quantize_limited
from .lsq import lsq_init_step, lsq_quantize
from .quant import NoQuant, WeightQuantizer, choose_clip, quantize_activations

RMS_EPS = 1e-8


NORMS = ("rmsnorm", "layernorm")
ACT_QUANTS = ("absmax", "lsq")     # per-row absmax scale, or a learned step per layer


def normalize(x: torch.Tensor, norm: str = "rmsnorm") -> torch.Tensor:
    """Per-row RMSNorm, or LayerNorm (mean removed first); no gain, no bias.

    RMSNorm keeps a zero input zero; LayerNorm moves it to -mean / rms:

    >>> x = torch.tensor([[0.0, 0.0, 3.0, 2.0]])
    >>> normalize(x).tolist()
    [[0.0, 0.0, 1.6641006469726562, 1.1094003915786743]]
    >>> normalize(x, "layernorm").tolist()
    [[-0.9622504711151123, -0.9622504711151123, 1.3471506834030151, 0.5773502588272095]]
    """
    if norm == "layernorm":
        x = x - x.mean(-1, keepdim=True)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS)


class _BitLinearFn(torch.autograd.Function):
    """y = act_quant(norm(relu?(x))) @ w_q.T; STE for both quantizers."""

    @staticmethod
    def forward(ctx, x, w, w_q, relu_input: bool, centered: bool = False, act_bits: int = 8,
                act_max: int = 127):
        if relu_input:
            x = x.clamp_min(0)
        positive = x > 0 if relu_input and centered else None   # ReLU mask for backward
        if centered:                                               # LayerNorm
            x = x - x.mean(-1, keepdim=True)
        r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + RMS_EPS)   # (B, 1)
        xn = x * r
        xq = quantize_act(xn, act_bits, act_max)
        ctx.relu_input, ctx.centered = relu_input, centered
        ctx.save_for_backward(xn, r, xq, w_q, positive)
        return xq.matmul(w_q.t())

    @staticmethod
    def backward(ctx, g):
        xn, r, xq, w_q, positive = ctx.saved_tensors
        g_w = g.t().matmul(xq)
        g_xn = g.matmul(w_q)                                       # STE through act quant
        # RMSNorm backward: dx = r * (g - xn * mean(g * xn))
        g_x = (g_xn - xn * (g_xn * xn).mean(-1, keepdim=True)) * r
        if ctx.centered:                                           # x - mean(x) backward
            g_x = g_x - g_x.mean(-1, keepdim=True)
        if ctx.relu_input:                                         # RMSNorm: xn > 0 <=> x > 0
            g_x = g_x * (positive if ctx.centered else xn > 0)
        return g_x, g_w, None, None, None, None, None


def quantize_act(xn: torch.Tensor, act_bits: int, act_max: int) -> torch.Tensor:
    """The absmax activation quantizer, limited to -act_max..act_max codes for a weight
    type that takes fewer activation levels (4p6, training/actlimit.py)."""
    return quantize_activations(xn, act_bits) if act_max >= 127 else quantize_limited(xn, act_max)


class QuantWeightMixin:
    """Shared by BitLinear and BitConv2d: quantizer, clip buffer, quantized weight."""

    def _init_quant(self, quantizer: WeightQuantizer):
        self.quantizer = quantizer
        self.register_buffer("clip", torch.tensor(0.0))
        self.step_quantscale = 0.0   # > 0: recompute the prop clip at every forward

    def quantized_weight(self) -> torch.Tensor:
        """Fake-quantized weight (no grad); ``clip`` must have been set. Pruned weights
        (``weight_mask`` 0, see bitnetlib.training.prune) are exact zeros, whatever the type."""
        w = self.weight.detach()
        if self.step_quantscale > 0 and self.training:
            with torch.no_grad():
                self.clip.copy_(self.quantizer.prop_clip(self.kept_weights(), self.step_quantscale))
        w_q = self.quantizer.fake_quant(w, self.clip)
        return w_q * self.weight_mask if self.is_pruned else w_q

    @property
    def is_pruned(self) -> bool:
        return getattr(self, "weight_mask", None) is not None

    def kept_weights(self) -> torch.Tensor:
        """The weights that are not pruned (flattened), or all weights when not pruned:
        the clip is chosen from these, so pruning does not shrink it."""
        w = self.weight.detach()
        return w[self.weight_mask.bool()] if self.is_pruned else w

    @torch.no_grad()
    def update_clip(self, method: str, quantscale: float, iters: int = 10):
        if self.clip.dim():     # per-row clips or a zero point: the quantizer's (training.wscale)
            self.clip.copy_(self.quantizer.choose(self.weight, method, quantscale, iters))
            return
        prev = self.clip if float(self.clip) > 0 else None
        self.clip.copy_(choose_clip(self.kept_weights(), self.quantizer, method, quantscale,
                                    prev, iters))

    def weight_codes(self) -> torch.Tensor:
        return self.quantizer.codes(self.weight.detach(), self.clip)

    @property
    def is_quantized(self) -> bool:
        return not isinstance(self.quantizer, NoQuant)


class BitLinear(nn.Linear, QuantWeightMixin):
    """Linear layer without bias: [ReLU], RMSNorm, 8-bit activations, quantized weights.

    ``relu_input`` applies the previous layer's ReLU here, inside the fused Function.
    ``act_bits`` and ``act_quant`` choose the activation quantizer: per-row absmax (the
    engine's) or LSQ, a learned step per layer (``act_step``, bitnetlib.training.lsq).
    """

    def __init__(self, in_features, out_features, quantizer: WeightQuantizer,
                 relu_input: bool = False, norm: str = "rmsnorm", act_bits: int = 8,
                 act_quant: str = "absmax"):
        super().__init__(in_features, out_features, bias=False)
        if norm not in NORMS:
            raise ValueError(f"BitLinear norm {norm!r}: expected one of {', '.join(NORMS)}")
        if act_quant not in ACT_QUANTS:
            raise ValueError(f"BitLinear act_quant {act_quant!r}: expected one of "
                             f"{', '.join(ACT_QUANTS)}")
        self.relu_input, self.norm = relu_input, norm
        self.act_bits, self.act_quant = act_bits, act_quant
        if act_quant == "lsq":      # 0 until the first batch sets the paper's initial step
            self.act_step = nn.Parameter(torch.tensor(0.0))
            self._act_step_checked = False
        self._init_quant(quantizer)

    def forward(self, x):
        if not self.is_quantized:
            x = F.relu(x) if self.relu_input else x
            return F.linear(normalize(x, self.norm), self.weight)
        if self.act_quant == "lsq":         # plain autograd: LSQ needs the step's gradient
            x = F.relu(x) if self.relu_input else x
            xq = self.lsq_activations(normalize(x, self.norm))
            w = self.weight + (self.quantized_weight() - self.weight).detach()
            return F.linear(xq, w)
        return _BitLinearFn.apply(x, self.weight, self.quantized_weight(), self.relu_input,
                                  self.norm == "layernorm", self.act_bits, self.quantizer.act_max)

    def lsq_activations(self, xn: torch.Tensor) -> torch.Tensor:
        if not self._act_step_checked:      # a restored step is kept; a fresh one is set
            with torch.no_grad():
                if float(self.act_step.detach()) == 0:
                    self.act_step.copy_(lsq_init_step(xn, self.act_bits))
            self._act_step_checked = True
        return lsq_quantize(xn, self.act_step, self.act_bits)

    @torch.no_grad()
    def quantized_input(self, x) -> torch.Tensor:
        """What the matmul sees: [ReLU], norm, quantized activations (float values)."""
        x = x.clamp_min(0) if self.relu_input else x
        x = normalize(x, self.norm)
        if not self.is_quantized:
            return x
        if self.act_quant == "lsq":
            return self.lsq_activations(x)
        return quantize_act(x, self.act_bits, self.quantizer.act_max)

    def extra_repr(self):
        return (f"{self.in_features}, {self.out_features}, quant={self.quantizer.name}, "
                f"relu_input={self.relu_input}" + (f", norm={self.norm}" if self.norm != "rmsnorm" else "")
                + (f", act={self.act_quant}{self.act_bits}"
                   if (self.act_quant, self.act_bits) != ("absmax", 8) else ""))


class _STE(torch.autograd.Function):
    """Forward the quantized tensor, backward the gradient unchanged."""

    @staticmethod
    def forward(ctx, w, w_q):
        return w_q

    @staticmethod
    def backward(ctx, g):
        return g, None


class BitConv2d(nn.Conv2d, QuantWeightMixin):
    """3x3 convolution, stride 1, no padding, no bias, quantized weights.

    Activations stay float between conv layers: no normalisation or activation
    quantization here. The engine keeps int8 maps (0..127) with a fixed rounding shift
    per layer chosen at export from calibration images, saturating above: steps that
    training does not model (bitnetlib/training/export.py calibrate_shifts).
    """

    def __init__(self, in_channels, out_channels, quantizer: WeightQuantizer, groups=1):
        super().__init__(in_channels, out_channels, kernel_size=3, stride=1, padding=0,
                         groups=groups, bias=False)
        self._init_quant(quantizer)
        # eager only: NHWC maps make the depthwise convs and max-pools that follow several
        # times faster on a CPU, with the same results (inductor picks its own layouts)
        self.channels_last = True

    def forward(self, x):
        w = _STE.apply(self.weight, self.quantized_weight()) if self.is_quantized else self.weight
        y = F.conv2d(x, w, groups=self.groups)
        if self.channels_last and not torch.compiler.is_compiling():
            y = y.contiguous(memory_format=torch.channels_last)
        return y

    def extra_repr(self):
        return super().extra_repr() + f", quant={self.quantizer.name}"


class InputQuant(nn.Module):
    """Per-image 8-bit absmax quantization of the input (what the engine receives)."""

    def forward(self, x):
        # (B, C, H, W) -> quantize over all pixels of each image
        flat = x.flatten(1)
        q = flat + (quantize_activations(flat) - flat).detach()
        return q.view_as(x)


def quant_layers(model: nn.Module):
    """The quantized-weight layers of a model, in forward order."""
    return [m for m in model.modules() if isinstance(m, QuantWeightMixin)]
