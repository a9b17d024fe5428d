"""Mixed precision per layer: packed sizes, candidate assignments, the Pareto front.

A candidate is one weight type per linear layer of an FC model (``quant_per_layer``).
Its packed size is known before training (bits per weight times weights), so the
search trains only the assignments that fit a byte budget.
"""
import itertools
import random

from .models import N_CLASSES
from .quant import get_quantizer


def linear_weight_counts(widths, in_features: int = 256) -> list:
    """Weights per linear layer of the FC model in_features -> widths... -> 10.

    >>> linear_weight_counts([64, 64, 64])
    [16384, 4096, 4096, 640]
    """
    sizes = [in_features, *widths, N_CLASSES]
    return [a * b for a, b in zip(sizes, sizes[1:])]


def packed_bytes(widths, quants, in_features: int = 256) -> float:
    """Packed weight bytes of an FC model with one type per linear layer.

    >>> packed_bytes([64, 64, 64], ["4bitsym"] * 4)     # the write-up's 12.3 KB model
    12608.0
    >>> packed_bytes([64, 64, 64], ["2bitsym", "4bitsym", "4bitsym", "4bitsym"])
    8512.0
    """
    counts = linear_weight_counts(widths, in_features)
    if len(quants) != len(counts):
        raise ValueError(f"{len(counts)} linear layers but {len(quants)} types given")
    return sum(get_quantizer(q).bits * n for q, n in zip(quants, counts)) / 8


def assignments(widths, types, budget_bytes: float, max_trials: int = 0, seed: int = 0,
                in_features: int = 256) -> list:
    """Per-layer type lists within ``budget_bytes``: all of them (exhaustive), or
    ``max_trials`` drawn at random without repeats (0: no limit), in enumeration order.

    >>> assignments([8], ["2bitsym", "8bit"], budget_bytes=600)
    [['2bitsym', '2bitsym'], ['2bitsym', '8bit']]
    """
    n_layers = len(widths) + 1
    fits = [list(a) for a in itertools.product(types, repeat=n_layers)
            if packed_bytes(widths, a, in_features) <= budget_bytes]
    if max_trials and len(fits) > max_trials:
        keep = sorted(random.Random(seed).sample(range(len(fits)), max_trials))
        fits = [fits[i] for i in keep]
    return fits


def pareto_front(points) -> list:
    """Indices of the (bytes, accuracy) points that no other point beats: none is as
    small and at least as accurate with one of the two strictly better. Sorted by size.

    >>> pareto_front([(100, 90.0), (200, 95.0), (150, 89.0), (200, 94.0), (50, 80.0)])
    [4, 0, 1]
    """
    front, best = [], float("-inf")
    for i in sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1])):
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
