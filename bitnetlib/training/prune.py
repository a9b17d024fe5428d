"""Unstructured weight pruning: per-layer masks by L1 magnitude or at random.

Every quantized layer is pruned on its own to the same density (fraction of weights
kept), as in the local pruning of the MASE labs (shared/seeds/003). A pruned layer has
a ``weight_mask`` buffer (1 keep, 0 pruned); its quantized weight is ``w_q * mask``, so
pruned weights are exact zeros even for types without a zero level (4bitsym), its clip
is chosen from the kept weights only, and ``enforce_masks`` zeroes the float weights
after every optimizer step, so a pruned weight stays pruned through fine-tuning.

>>> import torch.nn as nn
>>> from bitnetlib.training.layers import BitLinear
>>> from bitnetlib.training.quant import get_quantizer
>>> layer = BitLinear(4, 2, get_quantizer("4bitsym"))
>>> with torch.no_grad(): _ = layer.weight.copy_(torch.tensor([[1., -2, 3, -4], [5, -6, 7, -8]]))
>>> prune_model(nn.Sequential(layer), "l1", 0.5)
>>> layer.weight_mask.tolist()
[[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]
"""
import copy

import torch

from .layers import quant_layers
from .schedule import update_clips

PRUNE_METHODS = ("l1", "random")


def n_kept(n_weights: int, density: float) -> int:
    """Weights kept of n at a density: round(density * n), at least 1."""
    return max(1, round(density * n_weights))


def l1_mask(w: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``n_kept`` largest |w| of the tensor (ties: torch.topk's choice)."""
    keep = torch.topk(w.detach().abs().flatten(), n_kept(w.numel(), density)).indices
    mask = torch.zeros(w.numel(), device=w.device)
    mask[keep] = 1.0
    return mask.view_as(w)


def random_mask(w: torch.Tensor, density: float, gen: torch.Generator) -> torch.Tensor:
    """Keep ``n_kept`` weights chosen uniformly at random (by ``gen``, on the CPU)."""
    keep = torch.randperm(w.numel(), generator=gen)[:n_kept(w.numel(), density)]
    mask = torch.zeros(w.numel())
    mask[keep] = 1.0
    return mask.view_as(w).to(w.device)


def add_weight_masks(model):
    """All-ones ``weight_mask`` buffers on every quantized layer (nothing pruned yet)."""
    for layer in quant_layers(model):
        if not layer.is_pruned:
            layer.register_buffer("weight_mask", torch.ones_like(layer.weight))


@torch.no_grad()
def prune_model(model, method: str, density: float, seed: int = 0):
    """Set every quantized layer's mask by ``method`` at ``density`` and zero the
    pruned weights. Random masks depend only on ``seed`` and the layer order."""
    if method not in PRUNE_METHODS:
        raise ValueError(f"prune method {method!r}: expected one of {', '.join(PRUNE_METHODS)}")
    add_weight_masks(model)
    gen = torch.Generator().manual_seed(seed)
    for layer in quant_layers(model):
        w = layer.weight
        mask = l1_mask(w, density) if method == "l1" else random_mask(w, density, gen)
        layer.weight_mask.copy_(mask)
    enforce_masks(model)


@torch.no_grad()
def enforce_masks(model):
    """Zero the pruned float weights (after each optimizer step)."""
    for layer in quant_layers(model):
        if layer.is_pruned:
            layer.weight.mul_(layer.weight_mask)


@torch.no_grad()
def weight_density(model) -> list:
    """Per quantized layer: fraction of non-zero weights in the quantized weight."""
    out = []
    for layer in quant_layers(model):
        w = layer.quantized_weight() if layer.is_quantized else layer.weight
        out.append(int((w != 0).sum()) / w.numel())
    return out


def total_density(model) -> float:
    """Non-zero weights over all weights of the quantized layers."""
    layers = quant_layers(model)
    sizes = [layer.weight.numel() for layer in layers]
    return sum(d * n for d, n in zip(weight_density(model), sizes)) / sum(sizes)


def pruned_copy(model, cfg, method: str, density: float):
    """A copy of a trained model pruned by ``method`` ('l1', 'random') to ``density``,
    its clips re-chosen from the kept weights as the first fine-tuning epoch does: the
    accuracy of pruning without fine-tuning."""
    pruned = copy.deepcopy(model)
    prune_model(pruned, method, density, cfg.seed)
    update_clips(pruned, cfg, 0)
    return pruned.eval()
