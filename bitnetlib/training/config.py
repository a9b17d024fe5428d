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

from .validate import CHOICES, ConfigError, RANGES, validate  # noqa: F401 (re-exported)

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
    switch_types: list = field(default_factory=list)  # switchable precision: the weight types
                                  # trained at once (bitnetlib.training.switchable)
    switch_feature_weight: float = 0.0  # weight of its feature loss (narrow vs widest)
    act_cycle: list = field(default_factory=list)  # activation bits cycled like quant_cycle
                                  # (same period, until quant_switch_epoch; then act_bits)
    distill_feature_weight: float = 0.0  # feature distillation: weight of the MSE between the
                                  # last hidden features of student and teacher (bitnetlib.training.distill)
    distill_frozen_head: bool = False  # the student's classifier takes the teacher's, frozen
    selfcomp: str = "none"        # 'layer' or 'channel': learned bit depth per layer or per
                                  # output row of every BitLinear (bitnetlib.training.selfcomp)
    selfcomp_gamma: float = 0.01  # weight of the size penalty (mean bits per weight)
    selfcomp_bits: float = 8.0    # initial bit depth
    selfcomp_lr_mult: float = 10.0  # learning rate of bit depths and exponents / lr
    # --- mixture of experts (model: fc_moe, bitnetlib.training.moe); widths: each expert's
    moe_experts: int = 4          # experts; one runs per image (top-1 of the gate)
    moe_gate_widths: list = field(default_factory=lambda: [16])  # gate hidden widths ([]: one layer)
    moe_trunk: int = 0            # width of a shared first layer that gate and experts read (0: none)
    moe_balance: float = 0.1      # weight of the load-balancing loss (0: off)
    # --- weight scales (bitnetlib.training.wscale)
    weight_scale: str = "tensor"  # 'channel': one clip per output row of every BitLinear
    weight_zero_point: str = "symmetric"  # 'asymmetric': its grid shifted by an integer
                                  # zero point (both: bitnetlib.training.wscale)


# Keys added after runs were cached. ``config_dict`` leaves them out while they are at
# their default, so every older configuration keeps its hash (experiments.config_key)
# and still matches the config saved in its checkpoint.pt and model.pt.
ADDED_KEYS = ("norm", "start_quant", "quant_switch_epoch", "init_from", "prune",
              "prune_density", "swa_start_epoch", "quant_cycle", "quant_cycle_period", "act_bits",
              "act_quant", "aug_elastic", "aug_elastic_grid", "label_smoothing", "dropout",
              "prune_rewind", "act_cycle", "switch_types", "switch_feature_weight",
              "distill_feature_weight", "distill_frozen_head",
              "selfcomp", "selfcomp_gamma", "selfcomp_bits", "selfcomp_lr_mult",
              "moe_experts", "moe_gate_widths", "moe_trunk", "moe_balance",
              "weight_scale", "weight_zero_point")


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
    return validate(TrainConfig(**kwargs))


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
