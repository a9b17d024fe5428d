"""Per-layer weight statistics: clip, code usage, entropy, size (and the code histogram
and entropy helpers they are made of).

Read from the quantizer's integer codes, never recomputed from float weights.
"""
import math

import torch

from .layers import quant_layers
from .quant import WeightQuantizer
from .wscale import clip_summary


@torch.no_grad()
def model_stats(model) -> list:
    """Per quantized layer: type, shape, clip, weights, bits, bytes and, for quantized
    types whose clip has been chosen, the code histogram, entropy and fraction of the
    code capacity used (an untrained model's clip is 0: it has no codes yet)."""
    stats = []
    for layer in quant_layers(model):
        if hasattr(layer, "selfcomp_stats"):      # learned bit depths (training.selfcomp)
            stats.append(layer.selfcomp_stats())
            continue
        q, n = layer.quantizer, layer.weight.numel()
        entry = {"type": q.name, "shape": list(layer.weight.shape), "clip": clip_summary(layer.clip),
                 "n_weights": n, "bits": q.bits * n, "bytes": q.bits * n / 8}
        if layer.is_quantized and clip_summary(layer.clip) > 0:
            hist = code_histogram(layer.weight_codes().cpu(), q.n_levels)
            h = entropy_bits(hist)
            entry.update(entropy=h, capacity_used=h / max_entropy_bits(q),
                         histogram=hist.tolist(), levels=list(q.levels))
        stats.append(entry)
    return stats


def format_stats(stats: list) -> str:
    """Human-readable per-layer report with the model's total size."""
    lines = []
    for i, s in enumerate(stats, 1):
        lines.append(f"Layer {i}: {s['type']} {'x'.join(map(str, s['shape']))}, "
                     f"clip {s['clip']:.4f}, {s['n_weights']} weights, {s['bytes']:.0f} bytes")
        if "histogram" in s:
            total = sum(s["histogram"])
            used = [(lv, c) for lv, c in zip(s["levels"], s["histogram"]) if c]
            lines.append("  values used: " + " ".join(f"{lv:g}" for lv, _ in used))
            lines.append("  percent:     " + " ".join(f"{100 * c / total:.1f}" for _, c in used))
            lines.append(f"  entropy {s['entropy']:.2f} bits, code capacity used "
                         f"{100 * s['capacity_used']:.1f}%")
    bits = sum(s["bits"] for s in stats)
    lines.append(f"Total: {bits:.0f} bits ({bits / 8 / 1024:.2f} KiB, {bits / 8:.0f} bytes)")
    return "\n".join(lines)


def code_histogram(codes: torch.Tensor, n_levels: int) -> torch.Tensor:
    return torch.bincount(codes.flatten(), minlength=n_levels)


def entropy_bits(counts: torch.Tensor) -> float:
    """Shannon entropy in bits of a histogram of code counts."""
    p = counts.double() / counts.sum().clamp_min(1)
    p = p[p > 0]
    return float(-(p * torch.log2(p)).sum())


def max_entropy_bits(quantizer: WeightQuantizer) -> float:
    return math.log2(quantizer.n_levels) if quantizer.n_levels else 32.0
