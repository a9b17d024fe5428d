"""Chapter 9's helpers for per-channel and asymmetric weight scales (training.wscale):
the trained scales rounded as the MCU could apply them, and the rescale bench's data
taken from the trained models (deploy.rescalebench)."""
import copy

import numpy as np
import torch

from ..deploy import rescalebench
from ..training.layers import quant_layers


def _rounded(ratio: torch.Tensor, rule: str) -> torch.Tensor:
    """Per-row scale / the layer's largest, as 'pow2' (a shift) or 'q8' (an int16 multiplier
    of 8 fraction bits) can hold it."""
    if rule == "pow2":
        return 2.0 ** torch.round(torch.log2(ratio))
    if rule == "q8":
        return torch.round(ratio * 256).clamp_min(1) / 256
    raise ValueError(f"unknown scale rule {rule!r}; valid: pow2, q8")


@torch.no_grad()
def rounded_scales(model, rule: str):
    """A copy of ``model`` (per-channel scales) whose per-row steps are rounded by ``rule``
    relative to each layer's largest, the codes and zero points kept: what the MCU would
    compute with a per-output shift (pow2) or multiplier (q8)."""
    m = copy.deepcopy(model)
    for layer in quant_layers(m):
        q, clip = layer.quantizer, layer.clip
        codes = q.codes(layer.weight, clip)
        new = clip.clone()
        top = clip[:, 0].max()
        new[:, 0] = top * _rounded(clip[:, 0] / top, rule)
        layer.clip.copy_(new)
        layer.weight.copy_(q.dequant(codes, new))
    return m


def bench_layers(channel_model, asym_model, seed: int = 0) -> list:
    """rescalebench data for the layers of the trained models: per-output shifts and Q8
    multipliers from ``channel_model``'s row scales, zero points (in integer weight
    units) from ``asym_model``'s offsets; accumulators and inputs random
    (``rescalebench.random_layers``): only __mulsi3's time depends on their values."""
    ch, asym = quant_layers(channel_model), quant_layers(asym_model)
    shapes = [tuple(l.weight.shape) for l in ch]
    out = rescalebench.random_layers(shapes, seed)
    for d, lc, la in zip(out, ch, asym):
        ratio = (lc.clip[:, 0] / lc.clip[:, 0].max()).cpu()
        e = -torch.round(torch.log2(ratio))                      # scale = top * 2^-e
        d["shift"] = (e.max() - e).numpy().astype(np.uint8)       # acc << (E - e)
        d["mult"] = torch.round(ratio * 256).clamp(1, 256).numpy().astype(np.int16)
        z = (la.clip[:, 1] * la.quantizer.int_scale).cpu().numpy()
        d["zero"] = np.resize(np.clip(z, -128, 127), len(d["acc"])).astype(np.int8)
    return out
