"""Validation of a training configuration: every key's choices and ranges, and the
rules between keys. ``config.make_config`` calls ``validate`` on every TrainConfig it
builds; a violation is one ``ConfigError`` line naming the key, what it got and what is
valid.
"""
import dataclasses
import math

from .fracbits import BITS_RANGE, is_bit_width
from .quant import QUANTIZERS
from .wscale import SCALED_TYPES, WEIGHT_SCALES, ZERO_POINTS

CHOICES = {
    "model": ("fc", "cnn", "cnn_addendum", "cnn_addendum_dw", "fc_moe"),
    "quant": tuple(QUANTIZERS),
    "conv_quant": tuple(QUANTIZERS),
    "scheduler": ("cosine", "linear", "step", "constant"),
    "clip": ("prop", "octav"),
    "clip_update": ("epoch", "step"),
    "device": ("auto", "cpu", "cuda"),
    "norm": ("rmsnorm", "layernorm"),
    "prune": ("none", "l1", "random"),
    "act_quant": ("absmax", "lsq"),
    "selfcomp": ("none", "layer", "channel"),
    "weight_scale": WEIGHT_SCALES,
    "weight_zero_point": ZERO_POINTS,
}


class ConfigError(ValueError):
    pass


MNIST_TRAIN = 60000
EPOCH_OR_OFF = (lambda v: v >= -1, "-1 (off) or a 0-based epoch >= 0")
# every numeric key: (test, the valid range as an error states it); floats must also be finite
RANGES = {
    "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "switch_feature_weight": (lambda v: v >= 0, ">= 0"),
    "distill_feature_weight": (lambda v: v >= 0, ">= 0 (0: off)"),
    "cnn_channels": (lambda v: v >= 1, ">= 1"),
    "epochs": (lambda v: v >= 1, ">= 1"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "lr": (lambda v: v > 0, "> 0"),
    "step_size": (lambda v: v >= 1, ">= 1 epoch"),
    "step_gamma": (lambda v: 0 < v <= 1, "a decay factor 0 < gamma <= 1"),
    "halve_lr_epoch": EPOCH_OR_OFF,
    "aug_rotation": (lambda v: 0 <= v <= 180, "0..180 degrees"),
    "aug_affine_rotation": (lambda v: 0 <= v <= 180, "0..180 degrees"),
    "aug_translate": (lambda v: 0 <= v <= 1, "0..1 (a fraction of the image size)"),
    "aug_scale_min": (lambda v: v > 0, "> 0"),
    "aug_scale_max": (lambda v: v > 0, "> 0"),
    "aug_elastic": (lambda v: v >= 0, ">= 0 pixels (0: off)"),
    "aug_elastic_grid": (lambda v: v >= 2, ">= 2 control points"),
    "quantscale": (lambda v: v > 0, "> 0"),
    "octav_iters": (lambda v: v >= 1, ">= 1"),
    "octav_freeze_epoch": EPOCH_OR_OFF,
    "distill_alpha": (lambda v: 0 <= v <= 1, "0..1"),
    "distill_temperature": (lambda v: v > 0, "> 0"),
    "label_smoothing": (lambda v: 0 <= v < 1, "0 <= e < 1"),
    "train_subset": (lambda v: 0 <= v <= MNIST_TRAIN, f"0 (all {MNIST_TRAIN} images) or "
                                                      f"1..{MNIST_TRAIN}"),
    "seed": (lambda v: 0 <= v < 2 ** 32, f"0..{2 ** 32 - 1}"),
    "threads": (lambda v: v >= 0, ">= 0 (0: torch's default)"),
    "quant_switch_epoch": (lambda v: v >= -1, "-1 (no switch) or an epoch >= 1"),
    "prune_density": (lambda v: 0 < v <= 1, "0 < density <= 1"),
    "swa_start_epoch": EPOCH_OR_OFF,
    "quant_cycle_period": (lambda v: v >= 0, "0 (no cycle) or a period >= 2 epochs"),
    "act_bits": (lambda v: 2 <= v <= 8, "2..8"),
    "selfcomp_gamma": (lambda v: v >= 0, ">= 0"),
    "selfcomp_bits": (lambda v: 1 <= v <= 16, "1..16 bits"),
    "selfcomp_lr_mult": (lambda v: v > 0, "> 0"),
    "moe_experts": (lambda v: 2 <= v <= 64, "2..64 experts"),
    "moe_trunk": (lambda v: 0 <= v <= 65535, "0 (no trunk) or a width 1..65535"),
    "moe_balance": (lambda v: v >= 0, ">= 0 (0: off)"),
}


def _check_ranges(cfg):
    """Every numeric key in its range (RANGES); floats also finite (no NaN, no inf)."""
    for key, (ok, valid) in RANGES.items():
        value = getattr(cfg, key)
        finite = not isinstance(value, float) or math.isfinite(value)
        if not (finite and ok(value)):
            raise ConfigError(f"config key {key!r}: expected {valid}, got {value!r}"
                              + ("" if finite else " (not a finite number)"))
    if cfg.aug_scale_max < cfg.aug_scale_min:
        raise ConfigError(f"config key 'aug_scale_max': expected >= aug_scale_min "
                          f"({cfg.aug_scale_min}), got {cfg.aug_scale_max}")


def _check_types(key: str, names: list):
    """Every entry of a list of weight types is a known type's name."""
    for q in names:
        if not isinstance(q, str) or q not in QUANTIZERS:
            raise ConfigError(f"config key {key!r}: {q!r} is not one of {', '.join(QUANTIZERS)}")


def _check_layers(cfg):
    """``widths``: positive ints (a bool is not one); ``quant_per_layer``: one type per
    linear layer."""
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in cfg.widths):
        raise ConfigError(f"config key 'widths': expected a list of positive ints, got {cfg.widths!r}")
    _check_types("quant_per_layer", cfg.quant_per_layer)
    n = len(cfg.widths) + 1
    if cfg.quant_per_layer and len(cfg.quant_per_layer) != n:
        raise ConfigError(f"config key 'quant_per_layer': expected {n} entries, one per linear "
                          f"layer (widths {cfg.widths} + output), got {len(cfg.quant_per_layer)}")


def validate(cfg):
    _check_ranges(cfg)
    for key, valid in CHOICES.items():
        if getattr(cfg, key) not in valid:
            raise ConfigError(f"config key {key!r}: {getattr(cfg, key)!r} is not one of "
                              f"{', '.join(map(str, valid))}")
    _check_layers(cfg)
    if cfg.clip_update == "step" and cfg.clip != "prop":
        raise ConfigError("config key 'clip_update': 'step' needs clip: prop (OCTAV runs per epoch)")
    if cfg.distill_alpha > 0 and not cfg.teacher:
        raise ConfigError("config key 'teacher': distill_alpha > 0 needs a teacher RUN_DIR")
    _validate_added(cfg)
    return cfg


def _validate_added(cfg):
    """The research-plan keys: quantization schedule, pruning and weight averaging."""
    _validate_schedule(cfg)
    if cfg.prune == "none" and cfg.prune_density != 1.0:
        raise ConfigError(f"config key 'prune_density': {cfg.prune_density} needs prune: "
                          f"l1 or random")
    _check_switchable(cfg)
    _check_feature_distill(cfg)
    _check_selfcomp(cfg)
    check_moe(cfg)
    _check_wscale(cfg)
    if cfg.prune_rewind and (cfg.prune != "l1" or not cfg.init_from):
        raise ConfigError("config key 'prune_rewind': needs prune: l1 and init_from (the "
                          "trained run whose weights choose the masks)")
    if not -1 <= cfg.swa_start_epoch < cfg.epochs:
        raise ConfigError(f"config key 'swa_start_epoch': expected -1 (off) or 0..{cfg.epochs - 1}, "
                          f"got {cfg.swa_start_epoch}")


def _validate_schedule(cfg):
    """Before ``quant_switch_epoch`` the linear layers use ``start_quant`` or cycle
    through ``quant_cycle``: exactly one of the two goes with the switch epoch."""
    if cfg.start_quant and cfg.start_quant not in QUANTIZERS:
        raise ConfigError(f"config key 'start_quant': {cfg.start_quant!r} is not one of "
                          f"{', '.join(QUANTIZERS)} (or '' for no switch)")
    _check_cycle_entries(cfg)
    if cfg.start_quant and cfg.quant_cycle:
        raise ConfigError("config keys 'start_quant' and 'quant_cycle': give one of them, "
                          f"got both ({cfg.start_quant!r}, {cfg.quant_cycle!r})")
    _check_act_cycle(cfg)
    scheduled = bool(cfg.start_quant or cfg.quant_cycle or cfg.act_cycle)
    if scheduled != (cfg.quant_switch_epoch >= 0):
        raise ConfigError("config keys 'start_quant' (or 'quant_cycle', 'act_cycle') and "
                          f"'quant_switch_epoch' go together: got start_quant="
                          f"{cfg.start_quant!r}, quant_cycle={cfg.quant_cycle!r}, "
                          f"act_cycle={cfg.act_cycle!r}, quant_switch_epoch={cfg.quant_switch_epoch}")
    if scheduled and not 0 < cfg.quant_switch_epoch < cfg.epochs:
        raise ConfigError(f"config key 'quant_switch_epoch': expected 1..{cfg.epochs - 1} "
                          f"(epochs={cfg.epochs}), got {cfg.quant_switch_epoch}")
    if scheduled and cfg.quant_per_layer:
        raise ConfigError("config keys 'start_quant' and 'quant_cycle': not supported with "
                          "quant_per_layer")
    if cfg.quant_cycle and (len(cfg.quant_cycle) < 2 or cfg.quant_cycle_period < 2):
        raise ConfigError(f"config keys 'quant_cycle' and 'quant_cycle_period': expected at "
                          f"least 2 types and a period >= 2 epochs, got {cfg.quant_cycle!r} "
                          f"and {cfg.quant_cycle_period}")
    if cfg.quant_cycle_period and not (cfg.quant_cycle or cfg.act_cycle):
        raise ConfigError(f"config key 'quant_cycle_period': {cfg.quant_cycle_period} needs "
                          f"quant_cycle or act_cycle (what to cycle through)")


def _check_switchable(cfg):
    """``switch_types``: 2+ known types, ``quant`` among them, prop clip (one clip for
    all), no other schedule of the weight type."""
    if not cfg.switch_types:
        if cfg.switch_feature_weight:
            raise ConfigError("config key 'switch_feature_weight': needs switch_types")
        return
    _check_types("switch_types", cfg.switch_types)
    if len(set(cfg.switch_types)) < 2 or cfg.quant not in cfg.switch_types or \
            {"Binary", "None"} & set(cfg.switch_types):
        raise ConfigError(f"config key 'switch_types': expected 2 or more types including "
                          f"quant ({cfg.quant!r}), not Binary or None (their clips differ), "
                          f"got {cfg.switch_types!r}")
    if cfg.clip != "prop" or cfg.start_quant or cfg.quant_cycle or cfg.quant_per_layer:
        raise ConfigError("config key 'switch_types': needs clip: prop and no start_quant, "
                          "quant_cycle or quant_per_layer")


def _check_cycle_entries(cfg):
    """``quant_cycle``: weight types, or real-valued bit widths (training.fracbits)."""
    lo, hi = BITS_RANGE
    for q in cfg.quant_cycle:
        if not (isinstance(q, str) and q in QUANTIZERS or is_bit_width(q) and lo <= q <= hi):
            raise ConfigError(f"config key 'quant_cycle': {q!r} is not one of "
                              f"{', '.join(QUANTIZERS)} or a bit width {lo:g}..{hi:g} "
                              f"(a number: round(2**bits) levels)")


def _check_act_cycle(cfg):
    """``act_cycle``: at least 2 activation bit widths of 2..8 (real-valued ones with the
    absmax quantizer only), with a period >= 2."""
    if not cfg.act_cycle:
        return
    if len(cfg.act_cycle) < 2 or cfg.quant_cycle_period < 2 or not all(
            is_bit_width(b) and 2 <= b <= 8 for b in cfg.act_cycle):
        raise ConfigError(f"config keys 'act_cycle' and 'quant_cycle_period': expected at least "
                          f"2 bit widths of 2..8 and a period >= 2 epochs, got {cfg.act_cycle!r} "
                          f"and {cfg.quant_cycle_period}")
    if cfg.act_quant != "absmax" and any(b != int(b) for b in cfg.act_cycle):
        raise ConfigError(f"config key 'act_cycle': real-valued bit widths {cfg.act_cycle!r} "
                          f"need act_quant: absmax (LSQ's grid has whole bits)")


def _check_feature_distill(cfg):
    """Feature distillation and the frozen classifier need a teacher, and neither goes
    with switchable precision (its step has its own losses) or a pruned classifier."""
    for key in ("distill_feature_weight", "distill_frozen_head"):
        if getattr(cfg, key) and not cfg.teacher:
            raise ConfigError(f"config key {key!r}: {getattr(cfg, key)!r} needs a teacher "
                              f"RUN_DIR (or run:<key>)")
        if getattr(cfg, key) and cfg.switch_types:
            raise ConfigError(f"config key {key!r}: not supported with switch_types")
    if cfg.distill_frozen_head and cfg.prune != "none":
        raise ConfigError("config key 'distill_frozen_head': not supported with prune "
                          "(the masks would change the teacher's classifier)")


SELFCOMP_DEFAULTS = dict(selfcomp_gamma=0.01, selfcomp_bits=8.0, selfcomp_lr_mult=10.0)


def _check_selfcomp(cfg):
    """Self-compression replaces every BitLinear's weight type by learned bit depths:
    its keys need it, and the options that set or mask the weight type exclude it."""
    if cfg.selfcomp == "none":
        for key, default in SELFCOMP_DEFAULTS.items():
            if getattr(cfg, key) != default:
                raise ConfigError(f"config key {key!r}: {getattr(cfg, key)} needs selfcomp: "
                                  f"layer or channel")
        return
    clash = [k for k, on in (("model", cfg.model != "fc"), ("prune", cfg.prune != "none"), ("quant_per_layer", cfg.quant_per_layer),
                             ("start_quant", cfg.start_quant), ("quant_cycle", cfg.quant_cycle),
                             ("switch_types", cfg.switch_types),
                             ("act_quant", cfg.act_quant != "absmax")) if on]
    if clash:
        raise ConfigError(f"config key 'selfcomp': {cfg.selfcomp!r} learns the linear layers' "
                          f"bit depths, not supported with {', '.join(clash)}")


def _moe_defaults(cfg) -> dict:
    """The moe_* keys' defaults, read from the config dataclass (their one home)."""
    return {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(cfg) if f.name.startswith("moe_")}


def check_moe(cfg):
    """``model: fc_moe`` (bitnetlib.training.moe): its keys need it; its gate widths are
    positive ints; one weight type for every layer (gate included), and none of the
    options that assume one FC chain (per-layer types, learned bits, switchable
    precision, feature distillation, pruning)."""
    if cfg.model != "fc_moe":
        for key, default in _moe_defaults(cfg).items():
            if getattr(cfg, key) != default:
                raise ConfigError(f"config key {key!r}: {getattr(cfg, key)!r} needs model: fc_moe")
        return
    g = cfg.moe_gate_widths
    if not all(isinstance(w, int) and not isinstance(w, bool) and 0 < w <= 65535 for w in g):
        raise ConfigError(f"config key 'moe_gate_widths': expected a list of widths 1..65535 "
                          f"([] for a one-layer gate), got {g!r}")
    clash = [k for k, on in (("quant_per_layer", cfg.quant_per_layer),
                             ("selfcomp", cfg.selfcomp != "none"),
                             ("switch_types", cfg.switch_types),
                             ("distill_feature_weight", cfg.distill_feature_weight),
                             ("distill_frozen_head", cfg.distill_frozen_head),
                             ("prune", cfg.prune != "none")) if on]
    if clash:
        raise ConfigError(f"config key 'model': fc_moe (one weight type in every layer, "
                          f"gate included) is not supported with {', '.join(clash)}")


def _check_wscale(cfg):
    """Per-channel or asymmetric weight scales (training.wscale) need a uniform integer
    grid on every linear layer and their own clips: nothing that swaps the quantizer,
    loads per-tensor clips or masks rows."""
    keys = [k for k, d in (("weight_scale", "tensor"), ("weight_zero_point", "symmetric"))
            if getattr(cfg, k) != d]
    if not keys:
        return
    key, value = keys[0], getattr(cfg, keys[0])
    bad = [q for q in cfg.quant_per_layer or [cfg.quant] if q not in SCALED_TYPES]
    if bad:
        raise ConfigError(f"config key {key!r}: {value!r} needs a uniform integer grid on every "
                          f"linear layer ({', '.join(SCALED_TYPES)}), got {bad[0]!r}")
    clash = [k for k, on in (("start_quant", cfg.start_quant), ("quant_cycle", cfg.quant_cycle),
                             ("switch_types", cfg.switch_types), ("selfcomp", cfg.selfcomp != "none"),
                             ("prune", cfg.prune != "none"), ("init_from", cfg.init_from),
                             ("clip_update: step", cfg.clip_update == "step")) if on]
    if clash:
        raise ConfigError(f"config key {key!r}: {value!r} is not supported with {', '.join(clash)}")
