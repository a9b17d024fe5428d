"""The two model families, built from the same layers.

FC:  flatten 16x16 -> BitLinear(256, w1) -> ReLU -> ... -> BitLinear(w_n, 10)
     (each ReLU runs inside the next BitLinear: ``relu_input=True``)
CNN: 8-bit input -> conv 3x3 1->C -> ReLU -> depthwise 3x3 -> ReLU -> maxpool 2
     -> depthwise 3x3 -> ReLU -> maxpool 2 -> flatten (C*2*2) -> the FC head.
     No padding: 16 -> 14 -> 12 -> 6 -> 4 -> 2.
The write-up's first CNN (its addendum; a training study, not exported): float conv
     3x3 1->C, padding 1 -> ReLU -> maxpool 2 -> float conv 3x3 C->C (``cnn_addendum``)
     or depthwise (``cnn_addendum_dw``), padding 1 -> ReLU -> maxpool 2 -> flatten
     (C*4*4) -> the FC head. 16 -> 8 -> 4.
"""
import torch
import torch.nn as nn

from .layers import BitConv2d, BitLinear, InputQuant
from .moe import build_moe
from .prune import add_weight_masks
from .quant import get_quantizer
from .wscale import scale_linear_layers
from .selfcomp import SelfCompLinear

N_CLASSES = 10


def fc_head(in_features: int, widths, quants, norm: str = "rmsnorm", act=None,
            dropout: float = 0.0, selfcomp=None) -> list:
    """BitLinear layers in_features -> widths... -> 10, with ReLU between them; ``act``:
    BitLinear's act_bits / act_quant keywords (None: 8-bit absmax). ``dropout`` > 0: a
    Dropout before every hidden BitLinear (it commutes with the ReLU inside the layer;
    an identity at inference, so export skips it). ``selfcomp``: SelfCompLinear's
    granularity and init_bits (learned bit depths, bitnetlib.training.selfcomp) in place
    of the types in ``quants``."""
    sizes = [in_features, *widths, N_CLASSES]
    if len(quants) != len(sizes) - 1:
        raise ValueError(f"{len(sizes) - 1} linear layers but {len(quants)} quant types given")
    layers = []
    for i, q in enumerate(quants):
        if i > 0 and dropout > 0:
            layers.append(nn.Dropout(dropout))
        if selfcomp:
            layers.append(SelfCompLinear(sizes[i], sizes[i + 1], relu_input=i > 0, norm=norm,
                                         act_bits=(act or {}).get("act_bits", 8), **selfcomp))
            continue
        layers.append(BitLinear(sizes[i], sizes[i + 1], get_quantizer(q), relu_input=i > 0,
                                norm=norm, **(act or {})))
    return layers


class FCModel(nn.Sequential):
    def __init__(self, widths, quants, in_features: int = 256, norm: str = "rmsnorm", act=None,
                 dropout: float = 0.0, selfcomp=None):
        super().__init__(nn.Flatten(), *fc_head(in_features, widths, quants, norm, act, dropout,
                                                selfcomp))


class CNNModel(nn.Sequential):
    # ReLU(True): in place, one map fewer to allocate per layer; the same values
    def __init__(self, channels: int, widths, quants, conv_quant: str = "8bit",
                 norm: str = "rmsnorm", act=None, dropout: float = 0.0):
        cq = get_quantizer
        super().__init__(
            InputQuant(),
            BitConv2d(1, channels, cq(conv_quant)), nn.ReLU(True),                    # 16 -> 14
            BitConv2d(channels, channels, cq(conv_quant), groups=channels), nn.ReLU(True),  # 14 -> 12
            nn.MaxPool2d(2),                                                      # 12 -> 6
            BitConv2d(channels, channels, cq(conv_quant), groups=channels), nn.ReLU(True),  # 6 -> 4
            nn.MaxPool2d(2),                                                      # 4 -> 2
            nn.Flatten(),                                                         # (B, C*4)
            *fc_head(channels * 4, widths, quants, norm, act, dropout),
        )
        # the Flatten: modules before it are the front (found, so that a change to the
        # layer list cannot move the front/head split)
        self.head_start = next(i for i, m in enumerate(self) if isinstance(m, nn.Flatten))

    def forward(self, x):
        # (B, 1, 16, 16) -> conv front, eager even inside a compiled step -> (B, C*4) -> head
        x = self.conv_front(x)
        for layer in list(self)[self.head_start:]:
            x = layer(x)
        return x

    @torch.compiler.disable
    def conv_front(self, x):
        """The conv layers, never compiled: inductor's code for the depthwise convs and
        max-pools on a CPU is about 2.5x slower than the eager NHWC kernels (18.2 vs
        7.5 s per epoch of configs/cnn64.yaml, benchmarks/epoch_time.py); the head and the
        loss stay compiled. The same arithmetic either way."""
        for layer in list(self)[:self.head_start]:
            x = layer(x)
        return x


class AddendumCNN(nn.Sequential):
    def __init__(self, channels: int, widths, quants, depthwise: bool, norm: str = "rmsnorm",
                 act=None, dropout: float = 0.0):
        super().__init__(
            nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False,
                      groups=channels if depthwise else 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),                                                         # (B, C*16)
            *fc_head(channels * 16, widths, quants, norm, act, dropout),
        )


def layer_quants(cfg) -> list:
    """One weight type per linear layer: ``quant_per_layer`` or ``quant`` everywhere."""
    n = len(cfg.widths) + 1
    if cfg.quant_per_layer:
        if len(cfg.quant_per_layer) != n:
            raise ValueError(f"quant_per_layer has {len(cfg.quant_per_layer)} entries but the "
                             f"model has {n} linear layers (widths {cfg.widths} + output)")
        return list(cfg.quant_per_layer)
    return [cfg.quant] * n


def build_model(cfg) -> nn.Module:
    """The model of a config; pruned configs get all-ones weight masks (bitnetlib.training.prune)
    that training sets and a saved state dict restores."""
    act = dict(act_bits=cfg.act_bits, act_quant=cfg.act_quant)
    if cfg.model == "fc":
        sc = dict(granularity=cfg.selfcomp, init_bits=cfg.selfcomp_bits) \
            if getattr(cfg, "selfcomp", "none") != "none" else None
        model = FCModel(cfg.widths, layer_quants(cfg), norm=cfg.norm, act=act, dropout=cfg.dropout,
                        selfcomp=sc)
    elif cfg.model == "cnn":
        model = CNNModel(cfg.cnn_channels, cfg.widths, layer_quants(cfg), cfg.conv_quant,
                         cfg.norm, act, cfg.dropout)
    elif cfg.model == "fc_moe":                  # mixture of experts (training.moe)
        model = build_moe(cfg, act)
    elif cfg.model in ("cnn_addendum", "cnn_addendum_dw"):
        model = AddendumCNN(cfg.cnn_channels, cfg.widths, layer_quants(cfg),
                            cfg.model.endswith("_dw"), cfg.norm, act, cfg.dropout)
    else:
        raise ValueError(f"unknown model {cfg.model!r}; valid: fc, cnn, cnn_addendum, "
                         f"cnn_addendum_dw, fc_moe")
    if cfg.prune != "none":
        add_weight_masks(model)
    return scale_linear_layers(model, getattr(cfg, "weight_scale", "tensor"),
                               getattr(cfg, "weight_zero_point", "symmetric"))
