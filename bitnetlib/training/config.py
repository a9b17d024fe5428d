"""Training configuration: a typed dataclass loaded from YAML, overridden by key=value.

Unknown keys and bad values stop with a one-line ``ConfigError`` that names the key
(and the file, or the ``key=value`` override it came from) and lists what is valid:
every numeric key has a range (``RANGES``), and a float must also be finite.
"""
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .quant import QUANTIZERS

CHOICES = {
    "model": ("fc", "cnn", "cnn_addendum", "cnn_addendum_dw"),
    "quant": tuple(QUANTIZERS),
    "conv_quant": tuple(QUANTIZERS),
    "scheduler": ("cosine", "linear", "step", "constant"),
    "clip": ("prop", "octav"),
    "clip_update": ("epoch", "step"),
    "device": ("auto", "cpu", "cuda"),
    "norm": ("rmsnorm", "layernorm"),
    "prune": ("none", "l1", "random"),
    "act_quant": ("absmax", "lsq"),
}


class ConfigError(ValueError):
    pass


@dataclass
class TrainConfig:
    model: str = "fc"
    quant: str = "4bitsym"
    quant_per_layer: list = field(default_factory=list)   # one type per linear layer
    widths: list = field(default_factory=lambda: [64, 64, 64])
    cnn_channels: int = 64
    conv_quant: str = "8bit"
    epochs: int = 60
    batch_size: int = 128
    lr: float = 0.001
    scheduler: str = "cosine"
    step_size: int = 10          # StepLR: epochs between decays
    step_gamma: float = 0.1      # StepLR: decay factor
    halve_lr_epoch: int = -1     # halve the LR from this epoch on (0-based); -1: never
    augment: bool = True
    aug_rotation: float = 10.0
    aug_affine_rotation: float = 10.0
    aug_translate: float = 0.1
    aug_scale_min: float = 0.9
    aug_scale_max: float = 1.1
    aug_elastic: float = 0.0      # elastic distortion: displacement std in 28x28 pixels; 0: off
    aug_elastic_grid: int = 4     # its control points per side (smoothness)
    clip: str = "prop"
    quantscale: float = 0.25
    clip_update: str = "epoch"    # 'step': recompute the prop clip at every training step
    octav_iters: int = 10
    octav_freeze_epoch: int = -1  # stop updating clips from this epoch on; -1: never
    teacher: str = ""             # RUN_DIR (or run:<key>) of a trained model to distill from
    distill_alpha: float = 0.0    # weight of the distillation loss (0: off)
    distill_temperature: float = 4.0
    label_smoothing: float = 0.0  # cross entropy against (1 - e) one-hot + e uniform
    train_subset: int = 0         # train on the first N images only (0: all 60,000)
    seed: int = 0
    device: str = "auto"
    threads: int = 0              # torch CPU threads (0: leave torch's default)
    compile: bool = False         # torch.compile the training step (~30 s once, then ~2x faster)
    data_root: str = ""
    # --- research-plan options (chapters 17+); see ADDED_KEYS
    norm: str = "rmsnorm"         # input normalisation of every BitLinear
    start_quant: str = ""         # linear-layer weight type before quant_switch_epoch ("": quant)
    quant_switch_epoch: int = -1  # 0-based epoch from which `quant` is used; -1: no switch
    init_from: str = ""           # RUN_DIR (or run:<key>) of a finished run to start from
    prune: str = "none"           # 'l1' or 'random': prune every quantized layer before training
    prune_density: float = 1.0    # fraction of weights kept per layer when pruning
    prune_rewind: bool = False    # lottery ticket: masks from init_from's weights, kept weights
                                  # reset to this run's own (seeded) initialisation
    swa_start_epoch: int = -1     # average the weights from this 0-based epoch on; -1: off
    quant_cycle: list = field(default_factory=list)  # types cycled before quant_switch_epoch,
    quant_cycle_period: int = 0   # lowest precision first; epochs per cycle (bitnetlib.train)
    act_bits: int = 8             # bits of the activations into every BitLinear
    act_quant: str = "absmax"     # their scale: per-row absmax, or 'lsq' (learned, bitnetlib.training.lsq)
    dropout: float = 0.0          # dropout on the input of every hidden BitLinear (training only)


# Keys added after runs were cached. ``config_dict`` leaves them out while they are at
# their default, so every older configuration keeps its hash (experiments.config_key)
# and still matches the config saved in its checkpoint.pt and model.pt.
ADDED_KEYS = ("norm", "start_quant", "quant_switch_epoch", "init_from", "prune",
              "prune_density", "swa_start_epoch", "quant_cycle", "quant_cycle_period", "act_bits",
              "act_quant", "aug_elastic", "aug_elastic_grid", "label_smoothing", "dropout",
              "prune_rewind")

MNIST_TRAIN = 60000
EPOCH_OR_OFF = (lambda v: v >= -1, "-1 (off) or a 0-based epoch >= 0")
# every numeric key: (test, the valid range as an error states it); floats must also be finite
RANGES = {
    "dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
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
}


def _check_type(key: str, value, tp):
    origin = typing.get_origin(tp) or tp
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is list and isinstance(value, list):
        return value
    if isinstance(value, origin) and not (origin is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"config key {key!r}: expected {origin.__name__}, got {value!r}"
                      + _text_number_hint(value, tp))


def _text_number_hint(value, tp) -> str:
    """YAML 1.1 reads 1e-3 as text: say so (and how to write it) instead of just 'str'."""
    try:
        number = tp is float and isinstance(value, str) and math.isfinite(float(value))
    except ValueError:
        number = False
    return f" (YAML reads {value} as text; write it with a dot: {float(value)!r})" if number else ""


def _check_ranges(cfg: TrainConfig):
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


def _check_layers(cfg: TrainConfig):
    """``widths``: positive ints (a bool is not one); ``quant_per_layer``: one type per
    linear layer."""
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in cfg.widths):
        raise ConfigError(f"config key 'widths': expected a list of positive ints, got {cfg.widths!r}")
    _check_types("quant_per_layer", cfg.quant_per_layer)
    n = len(cfg.widths) + 1
    if cfg.quant_per_layer and len(cfg.quant_per_layer) != n:
        raise ConfigError(f"config key 'quant_per_layer': expected {n} entries, one per linear "
                          f"layer (widths {cfg.widths} + output), got {len(cfg.quant_per_layer)}")


def _validate(cfg: TrainConfig) -> TrainConfig:
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


def _validate_added(cfg: TrainConfig):
    """The research-plan keys: quantization schedule, pruning and weight averaging."""
    _validate_schedule(cfg)
    if cfg.prune == "none" and cfg.prune_density != 1.0:
        raise ConfigError(f"config key 'prune_density': {cfg.prune_density} needs prune: "
                          f"l1 or random")
    if cfg.prune_rewind and (cfg.prune != "l1" or not cfg.init_from):
        raise ConfigError("config key 'prune_rewind': needs prune: l1 and init_from (the "
                          "trained run whose weights choose the masks)")
    if not -1 <= cfg.swa_start_epoch < cfg.epochs:
        raise ConfigError(f"config key 'swa_start_epoch': expected -1 (off) or 0..{cfg.epochs - 1}, "
                          f"got {cfg.swa_start_epoch}")


def _validate_schedule(cfg: TrainConfig):
    """Before ``quant_switch_epoch`` the linear layers use ``start_quant`` or cycle
    through ``quant_cycle``: exactly one of the two goes with the switch epoch."""
    if cfg.start_quant and cfg.start_quant not in QUANTIZERS:
        raise ConfigError(f"config key 'start_quant': {cfg.start_quant!r} is not one of "
                          f"{', '.join(QUANTIZERS)} (or '' for no switch)")
    _check_types("quant_cycle", cfg.quant_cycle)
    if cfg.start_quant and cfg.quant_cycle:
        raise ConfigError("config keys 'start_quant' and 'quant_cycle': give one of them, "
                          f"got both ({cfg.start_quant!r}, {cfg.quant_cycle!r})")
    scheduled = bool(cfg.start_quant or cfg.quant_cycle)
    if scheduled != (cfg.quant_switch_epoch >= 0):
        raise ConfigError("config keys 'start_quant' (or 'quant_cycle') and 'quant_switch_epoch' "
                          f"go together: got start_quant={cfg.start_quant!r}, "
                          f"quant_cycle={cfg.quant_cycle!r}, "
                          f"quant_switch_epoch={cfg.quant_switch_epoch}")
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
    if cfg.quant_cycle_period and not cfg.quant_cycle:
        raise ConfigError(f"config key 'quant_cycle_period': {cfg.quant_cycle_period} needs "
                          f"quant_cycle (the types to cycle through)")


def _unknown_key(where: str, key) -> ConfigError:
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    return ConfigError(f"{where}: unknown key {key!r}; valid keys: {', '.join(fields)}")


def _yaml_problem(e: yaml.YAMLError, where: bool = True) -> str:
    """A YAML error in one line: what is wrong (and on which line)."""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    mark = getattr(e, "problem_mark", None)
    return f"line {mark.line + 1}: {problem}" if where and mark is not None else problem


def make_config(values: dict, source: str = "config") -> TrainConfig:
    hints = typing.get_type_hints(TrainConfig)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise _unknown_key(source, key)
        kwargs[key] = _check_type(key, value, hints[key])
    return _validate(TrainConfig(**kwargs))


def parse_overrides(pairs) -> dict:
    """['epochs=3', 'widths=[32,32]'] -> {'epochs': 3, 'widths': [32, 32]} (YAML values);
    an unknown key or a value that is not YAML is blamed on its override."""
    out, hints = {}, typing.get_type_hints(TrainConfig)
    for pair in pairs or ():
        if "=" not in pair:
            raise ConfigError(f"override {pair!r}: expected key=value")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if key not in hints:
            raise _unknown_key(f"override {pair!r}", key)
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override {pair!r}: the value is not valid YAML "
                              f"({_yaml_problem(e, where=False)})") from None
    return out


def read_yaml(path: Path) -> dict:
    """The key: value mapping of a YAML config file (a one-line ConfigError if there is none)."""
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else e
        raise ConfigError(f"config file {path}: cannot be read as text ({why})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value")
    return values


def load_config(path=None, overrides=()) -> TrainConfig:
    """Config from a YAML file (or defaults), then ``key=value`` overrides."""
    values = read_yaml(Path(path)) if path is not None else {}
    values.update(parse_overrides(overrides))
    return make_config(values, str(path) if path is not None else "config")


def config_dict(cfg: TrainConfig) -> dict:
    """The configuration as a dict, without the ADDED_KEYS that are at their default.

    >>> sorted(set(config_dict(make_config({"norm": "layernorm"}))) - set(config_dict(TrainConfig())))
    ['norm']
    """
    out = dataclasses.asdict(cfg)
    for key in ADDED_KEYS:
        if out[key] == DEFAULTS[key]:
            del out[key]
    return out


DEFAULTS = dataclasses.asdict(TrainConfig())


def config_diff(old: dict, new: dict, most: int = 6) -> str:
    """``key old -> new`` for the keys whose values differ (a key left out is at its
    default), at most ``most`` of them.

    >>> config_diff({"epochs": 60, "threads": 0}, {"epochs": 5, "threads": 0, "norm": "layernorm"})
    "epochs 60 -> 5, norm 'rmsnorm' -> 'layernorm'"
    """
    keys = [k for k in dict.fromkeys([*old, *new])
            if old.get(k, DEFAULTS.get(k)) != new.get(k, DEFAULTS.get(k))]
    shown = [f"{k} {old.get(k, DEFAULTS.get(k))!r} -> {new.get(k, DEFAULTS.get(k))!r}"
             for k in keys[:most]]
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return ", ".join(shown) + more
