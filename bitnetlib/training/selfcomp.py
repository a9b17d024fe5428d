"""Self-compression (Csefalvay & Imber 2023): a learned bit depth per layer or channel.

Every weight group (the whole layer, or one output row: ``selfcomp: layer | channel``)
has a learned bit depth ``b`` and a learned exponent ``e``; its weights are

    B = round(relu(b))                                   (round-through: STE)
    q = 2^e * round(clip(w / 2^e, -2^(B-1), 2^(B-1) - 1))  (round: STE)

so the group holds the B-bit signed integers times 2^e, and a group whose B reaches 0
is all zeros (a removed channel). ``b`` is continuous and trained by gradient, as in
the paper: its gradient comes from the weights it clips and from the size penalty
``gamma * (total bits / total weights)`` added to the loss (``selfcomp_step``); ``e``
learns from the clipped weights. The paper's size also discounts the next layer's
inputs of a removed channel; ours counts each row's bits times its length only.

``SelfCompLinear`` is a BitLinear (RMSNorm, 8-bit activations, the same fused
Function) whose weight is ``selfcomp_quant``'s, with the gradient reaching w, b and e.
The C engine has no such types: ``export.check_deployable`` refuses these runs;
``engine_types`` reads a learned allocation as a deployable ``quant_per_layer`` (each
layer's mean bits rounded up to an engine type), to be trained as such (chapter 29).
"""
import torch
import torch.nn as nn

from .layers import BitLinear, _BitLinearFn, quant_layers
from .quant import QUANTIZERS, NoQuant

GRANULARITIES = ("layer", "channel")


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, the identity backward."""
    return x + (x.round() - x).detach()


def int_bits(b: torch.Tensor) -> torch.Tensor:
    """The bit depth the forward pass uses: round(relu(b)), gradient straight through."""
    return round_ste(torch.relu(b))


def selfcomp_quant(w: torch.Tensor, b: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Self-compressing fake quantization; ``b`` and ``e`` broadcast against ``w``.

    >>> w = torch.tensor([-3.0, -0.4, 0.6, 1.2, 9.0])
    >>> selfcomp_quant(w, torch.tensor(3.2), torch.tensor(-1.0)).tolist()   # B = 3: -4..3 halves
    [-2.0, -0.5, 0.5, 1.0, 1.5]
    >>> selfcomp_quant(w, torch.tensor(0.4), torch.tensor(-1.0)).tolist()   # B = 0: removed
    [0.0, 0.0, 0.0, 0.0, 0.0]
    """
    B = int_bits(b)
    scale = torch.exp2(e)
    hi = torch.exp2(B - 1)
    v = torch.minimum(torch.maximum(w / scale, -hi), hi - 1)   # gradients reach both bounds
    q = scale * round_ste(v)
    return q * (B.detach() > 0)                                # exact zeros at B = 0


class SelfCompQuantizer(NoQuant):
    """Names the type in stats and export ('selfcomp', not an engine type); the values
    come from the layer's ``b`` and ``e``, not from a fixed level set."""
    name, bits = "selfcomp", 0.0

    def codes(self, w, clip):
        raise ValueError("self-compressed layers have no engine codes (learned bit depths)")


class SelfCompLinear(BitLinear):
    """BitLinear with a learned bit depth and exponent per layer or per output row."""

    def __init__(self, in_features, out_features, granularity: str = "channel",
                 init_bits: float = 8.0, relu_input: bool = False, norm: str = "rmsnorm",
                 act_bits: int = 8):
        if granularity not in GRANULARITIES:
            raise ValueError(f"selfcomp {granularity!r}: expected one of {', '.join(GRANULARITIES)}")
        super().__init__(in_features, out_features, SelfCompQuantizer(), relu_input, norm,
                         act_bits)
        self.granularity = granularity
        rows = out_features if granularity == "channel" else 1
        with torch.no_grad():      # 2^e (2^(B-1) - 1) = max|w| of the group: nothing clipped
            amax = self.weight.abs().amax(1, keepdim=True) if rows > 1 else \
                self.weight.abs().max().view(1, 1)
            top = max(2 ** (round(init_bits) - 1) - 1, 0.5)
            e0 = torch.log2(amax.clamp_min(1e-8) / top)
        self.bits = nn.Parameter(torch.full((rows, 1), float(init_bits)))
        self.exponent = nn.Parameter(e0.clone())

    @property
    def is_quantized(self) -> bool:
        return True

    def quantized_weight(self) -> torch.Tensor:
        with torch.no_grad():
            return selfcomp_quant(self.weight, self.bits, self.exponent)

    def forward(self, x):
        w_q = selfcomp_quant(self.weight, self.bits, self.exponent)
        # the fused Function returns d loss / d (2nd argument): w_q's graph takes it on
        return _BitLinearFn.apply(x, w_q, w_q.detach(), self.relu_input,
                                  self.norm == "layernorm", self.act_bits, 127)

    @torch.no_grad()
    def update_clip(self, method: str, quantscale: float, iters: int = 10):
        """No clip to choose: ``clip`` shows the largest level, 2^e (2^(B-1) - 1)."""
        top = torch.exp2(self.exponent.flatten()) * (self.row_bits().exp2() / 2 - 1)
        self.clip.copy_(top.max())

    @torch.no_grad()
    def row_bits(self) -> torch.Tensor:
        """The bit depth of every output row (out,), as the forward pass uses it."""
        return torch.relu(self.bits).round().flatten().expand(self.out_features).clone()

    def size_bits(self) -> torch.Tensor:
        """Differentiable total bits: each group's (rounded) bit depth times its weights."""
        return int_bits(self.bits).sum() * self.weight.numel() / self.bits.numel()

    @torch.no_grad()
    def selfcomp_stats(self) -> dict:
        rb = self.row_bits()
        bits = float(rb.sum()) * self.in_features
        return {"type": f"selfcomp-{self.granularity}", "shape": list(self.weight.shape),
                "clip": float(self.clip), "n_weights": self.weight.numel(), "bits": bits,
                "bytes": bits / 8, "mean_bits": bits / self.weight.numel(),
                "zero_channels": float((rb == 0).float().mean()),
                "row_bits": rb.tolist() if self.granularity == "channel" else [float(rb[0])],
                "exponent": self.exponent.detach().flatten().tolist()}

    def extra_repr(self):
        return (f"{self.in_features}, {self.out_features}, selfcomp={self.granularity}, "
                f"relu_input={self.relu_input}")


def selfcomp_layers(model) -> list:
    return [m for m in model.modules() if isinstance(m, SelfCompLinear)]


def mean_bits(model) -> torch.Tensor:
    """Total bits / total weights over the quantized layers (fixed types count their
    own bits): the size penalty's term, differentiable in every ``b``."""
    total, n = 0.0, 0
    for layer in quant_layers(model):
        total = total + (layer.size_bits() if isinstance(layer, SelfCompLinear)
                         else layer.quantizer.bits * layer.weight.numel())
        n += layer.weight.numel()
    return total / max(n, 1)


def selfcomp_step(step_fn, gamma: float):
    """``step_fn``'s loss plus ``gamma`` times the model's mean bits per weight (the
    run's ``train_loss`` includes it)."""
    def step(model, xb, yb, tb=None):
        loss, logits = step_fn(model, xb, yb, tb)
        return loss + gamma * mean_bits(model), logits
    return step


def param_groups(model, lr_mult: float):
    """Adam's parameter groups: the bit depths and exponents train at ``lr_mult``
    times the learning rate (``train.set_epoch_quant`` applies ``lr_mult``)."""
    layers = selfcomp_layers(model)
    if not layers:
        return model.parameters()
    own = {id(p) for m in layers for p in (m.bits, m.exponent)}
    return [{"params": [p for p in model.parameters() if id(p) not in own]},
            {"params": [p for m in layers for p in (m.bits, m.exponent)], "lr_mult": lr_mult}]


def total_bytes(layer_stats: list) -> float:
    """Bytes of all quantized layers of one epoch's ``model_stats``."""
    return sum(s["bytes"] for s in layer_stats)


def is_selfcomp(cfg) -> bool:
    return getattr(cfg, "selfcomp", "none") != "none"



ENGINE_TYPES = ("Binary", "Ternary", "2bitsym", "4bitsym", "8bit")   # by bits per weight


def engine_types(layer_stats: list) -> list:
    """Per layer of one epoch's ``model_stats``, the engine type of the fewest bits that
    has at least the layer's learned mean bits (8bit above 8): the learned bit
    allocation as a deployable ``quant_per_layer``.

    >>> engine_types([{"mean_bits": 0.0}, {"mean_bits": 1.5}, {"mean_bits": 3.2}, {"mean_bits": 9.1}])
    ['Binary', 'Ternary', '4bitsym', '8bit']
    """
    return [next((t for t in ENGINE_TYPES if QUANTIZERS[t].bits >= s["mean_bits"]), "8bit")
            for s in layer_stats]
