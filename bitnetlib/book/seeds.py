"""The seed study of the FC recipe: one home for its variants and settings, read by
the seed chapter (25) and the front page, so both name the same runs.

Each run uses one thread, so that it is the same run (and the same store entry) as
``bitnet train configs/fc_4bitsym_64x3_aug.yaml --set threads=1 seed=N`` by hand.
"""
import math
import statistics

from .cache import require, resolve_config, sweep

CONFIG = "configs/fc_4bitsym_64x3_aug.yaml"
VARIANTS = {                                   # label -> overrides of CONFIG
    "write-up (prop clip, lr 0.001)": {},
    "OCTAV clip": {"clip": "octav"},
    "OCTAV clip, lr 0.002": {"clip": "octav", "lr": 0.002},
    "OCTAV clip, lr 0.002, label smoothing 0.05": {"clip": "octav", "lr": 0.002,
                                                   "label_smoothing": 0.05},
}
# Other shapes at no more than the recipe's 12,608 packed bytes (the 12.3 KB),
# each the best single run of its kind in the store: a wider first layer in 2bitsym
# (chapter 22's setting, 11,584 B) and two hidden layers (chapter 5's depth at equal
# bytes, 80/48: 12,400 B).
SHAPES = {
    "2bitsym first layer, 96/64/64": {"widths": [96, 64, 64],
                                      "quant_per_layer": ["2bitsym", "4bitsym", "4bitsym",
                                                          "4bitsym"]},
    "two hidden layers, 80/48": {"widths": [80, 48]},
}
PROFILES = dict(smoke=dict(epochs=3, train_subset=4000, n_seeds=3, shape_seeds=2, compile=False),
                full=dict(epochs=60, train_subset=0, n_seeds=15, shape_seeds=10, compile=True))


def seed_runs(S, device="auto", variants=VARIANTS, n_seeds=None) -> dict:
    """{label: [run per seed 0 .. n-1]} for the chapter settings ``S`` (n: ``n_seeds``,
    default ``S.n_seeds``)."""
    common = dict(epochs=S.epochs, train_subset=S.train_subset, compile=S.compile,
                  device=device, threads=1)
    grids = {label: [{**common, **o, "seed": s} for s in range(n_seeds or S.n_seeds)]
             for label, o in variants.items()}
    require(resolve_config(g, CONFIG) for grid in grids.values() for g in grid)  # all at once
    return {label: sweep(grid, base=CONFIG, desc=label) for label, grid in grids.items()}


def chance_of_bar(acc, target: float) -> float:
    """P(one more run >= target) under a normal fit to the runs' accuracies.

    >>> round(chance_of_bar([98.8, 98.9, 99.0], 99.0), 3)
    0.159
    """
    z = (target - statistics.mean(acc)) / max(statistics.stdev(acc), 1e-9)
    return 0.5 * math.erfc(z / math.sqrt(2))


def spread_row(label: str, acc, target: float) -> dict:
    """Mean, sd, range and how many runs reach ``target`` (a table row)."""
    return dict(variant=label, runs=len(acc), mean=statistics.mean(acc),
                sd=statistics.stdev(acc), min=min(acc), max=max(acc),
                **{f"runs >= {target}": sum(a >= target for a in acc),
                   "P(run >= bar), normal fit": chance_of_bar(acc, target)})


def settings(profile: str):
    """The seed study's settings at ``profile`` (for pages other than its chapter)."""
    from types import SimpleNamespace
    return SimpleNamespace(profile=profile, **PROFILES[profile])
