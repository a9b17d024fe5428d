"""Chapter 22's mixed-precision setting, shared with chapter 28 (the Optuna search), so
that both train the same runs and the search is compared with the same models.

    mixed_settings(params)   (settings, common run overrides) of chapter 22's profiles
    budget_bytes(S, type)    the byte budget: the uniform model of ``type`` at S.widths
    handpicked(S, ...)       chapter 22's grid: the uniform models, each layer lowered
                             alone, and the enumerated assignments within the budget
"""
from ..training.mixed import assignments, packed_bytes
from .chapter import chapter

BASE = "configs/fc_4bitsym_64x3_aug.yaml"
STUDY, TRIALS = "fc_mixed", 100   # chapter 28's Optuna study at full (``make search``)
PROFILES = dict(
    smoke=dict(epochs=3, widths=[32, 32], types=["2bitsym", "4bitsym", "8bit"], max_trials=0,
               train_subset=4000, augment=False, threads=1, compile=False),
    full=dict(epochs=60, widths=[64, 64, 64],
              types=["Binary", "Ternary", "2bitsym", "4bitsym", "8bit"], max_trials=40,
              train_subset=0, augment=True, threads=0, compile=True))


def mixed_settings(params: dict):
    """Chapter 22's settings from a chapter's parameters, and the run overrides common to
    all its models (widths, recipe, device, seed)."""
    S = chapter(params, **PROFILES)
    common = dict(widths=S.widths, epochs=S.epochs, train_subset=S.train_subset,
                  augment=S.augment, compile=S.compile, device=S.device, seed=S.seed)
    return S, common


def budget_bytes(S, budget_type: str) -> float:
    """The packed size of the uniform ``budget_type`` model at the chapter's widths."""
    return packed_bytes(S.widths, [budget_type] * (len(S.widths) + 1))


def type_grid(assignment) -> dict:
    """A per-layer assignment as run overrides: ``quant`` when every layer has the same
    type (the uniform model's own run), else ``quant_per_layer``."""
    if len(set(assignment)) == 1:
        return {"quant": assignment[0]}
    return {"quant_per_layer": list(assignment)}


def handpicked(S, budget_type: str, low_type: str, seed: int = 0):
    """Chapter 22's assignments: (uniform types, one layer lowered to ``low_type`` at a
    time, the enumerated (or sampled) ones within the budget, the mixed ones of both
    without repeats)."""
    n_layers = len(S.widths) + 1
    lowered = [[budget_type] * i + [low_type] + [budget_type] * (n_layers - i - 1)
               for i in range(n_layers)]
    searched = assignments(S.widths, S.types, budget_bytes(S, budget_type), S.max_trials, seed)
    mixed = [a for a in lowered + searched if len(set(a)) > 1]
    mixed = [a for i, a in enumerate(mixed) if a not in mixed[:i]]          # each once
    return [[t] * n_layers for t in S.types], lowered, searched, mixed


def handpicked_grid(S, budget_type: str, low_type: str, seed: int = 0) -> list:
    """Run overrides of chapter 22's models: the uniform ones first, then the mixed."""
    uniform, _, _, mixed = handpicked(S, budget_type, low_type, seed)
    return [{"quant": a[0]} for a in uniform] + [{"quant_per_layer": a} for a in mixed]
