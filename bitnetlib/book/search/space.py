"""The search space: per-layer weight types and hidden widths of an FC net.

A point of the space (Optuna's ``trial.params``) is ``width_1 .. width_H`` (one of
``widths`` each) and ``type_1 .. type_{H+1}`` (one of ``types`` each, from the weight
table ``bitnetlib.wtypes``: every type has a C kernel). It maps to a TrainConfig over
chapter 22's recipe (``book.mixed``), so a point that chapter 22 trained, or that an
earlier trial trained, is the same run (same config key). A uniform assignment is the
uniform model's own run (``quant``), a mixed one uses ``quant_per_layer``.

Its packed size is exact before training: ``deploy.model.fc_weight_bytes``, the row
padding of ``bitnet export``'s default (rows) layout included.

Activations stay at 8 bits: the C engine and the export implement 8-bit absmax
activations only (``training.export.check_deployable``), so there is nothing to search.
"""
import hashlib
import json
from dataclasses import asdict, dataclass, field

from ...deploy.model import fc_weight_bytes
from ...deploy.packing import ExportError
from ...training.config import ConfigError, TrainConfig, parse_overrides
from ...training.export import check_deployable
from ...training.models import N_CLASSES
from ...wtypes import TYPES
from ..cache import resolve_config
from ..mixed import BASE, budget_bytes, mixed_settings, type_grid

IN_FEATURES = 256                      # 16 x 16 pixels
WIDTHS = dict(smoke=[16, 32, 48], full=[16, 24, 32, 48, 64, 96, 128])
SEARCHED_KEYS = ("widths", "quant", "quant_per_layer", "model")   # not in --set


class SearchError(RuntimeError):
    """A search that cannot run as asked: one line naming the option or study."""


@dataclass
class Space:
    types: list                        # weight types to choose from, per linear layer
    widths: list                       # widths to choose from, per hidden layer
    hidden: int = 3                    # hidden layers
    budget: float = 0                  # packed bytes at most (0: no budget)
    recipe: dict = field(default_factory=dict)   # run overrides of every trial, over base
    base: str = BASE

    def __post_init__(self):
        self.check()

    def check(self):
        bad = [t for t in self.types if t not in TYPES]
        if bad or not self.types:
            raise SearchError(f"types {bad or self.types}: expected weight types among "
                              f"{', '.join(TYPES)}")
        if not self.widths or not all(isinstance(w, int) and not isinstance(w, bool)
                                      and w > 0 for w in self.widths):
            raise SearchError(f"widths {self.widths!r}: expected positive integers")
        if not isinstance(self.hidden, int) or self.hidden < 1:
            raise SearchError(f"hidden {self.hidden!r}: expected an integer >= 1")
        if not self.budget >= 0:
            raise SearchError(f"budget {self.budget!r}: expected bytes >= 0 (0: none)")
        searched = sorted(set(self.recipe) & set(SEARCHED_KEYS))
        if searched:
            raise SearchError(f"recipe key(s) {searched}: chosen by the search, not settable")
        cfg = resolve_config({**self.recipe, "widths": [self.widths[0]] * self.hidden}, self.base)
        try:                           # every trial is checked by the C engine
            check_deployable(cfg, "the recipe")
        except ExportError as e:
            raise SearchError(str(e)) from None

    def names(self) -> tuple:
        """(width parameter names, type parameter names)."""
        return ([f"width_{i + 1}" for i in range(self.hidden)],
                [f"type_{i + 1}" for i in range(self.hidden + 1)])

    def distributions(self) -> dict:
        """Optuna's distributions of the parameters (``study.ask(...)``)."""
        from optuna.distributions import CategoricalDistribution
        wn, tn = self.names()
        return {**{n: CategoricalDistribution(list(self.widths)) for n in wn},
                **{n: CategoricalDistribution(list(self.types)) for n in tn}}

    def layers(self, params: dict):
        """(hidden widths, one type per linear layer) of a point; unknown or missing
        parameters and values outside the space are a SearchError naming them."""
        wn, tn = self.names()
        unknown = sorted(set(params) - set(wn) - set(tn))
        missing = [n for n in wn + tn if n not in params]
        if unknown or missing:
            raise SearchError(f"parameters: unknown {unknown}, missing {missing}; valid: "
                              f"{', '.join(wn + tn)}")
        for n in wn + tn:
            choices = self.widths if n in wn else self.types
            if params[n] not in choices:
                raise SearchError(f"parameter {n}={params[n]!r}: expected one of {choices}")
        return [params[n] for n in wn], [params[n] for n in tn]

    def point(self, widths, types) -> dict:
        """The parameters of hidden ``widths`` and per-layer ``types`` (checked)."""
        wn, tn = self.names()
        params = {**dict(zip(wn, widths)), **dict(zip(tn, types))}
        self.layers(params)
        return params

    def packed_bytes(self, params: dict) -> int:
        widths, types = self.layers(params)
        return fc_weight_bytes([IN_FEATURES, *widths, N_CLASSES], types)

    def overrides(self, params: dict) -> dict:
        widths, types = self.layers(params)
        return {**self.recipe, "widths": widths, **type_grid(types)}

    def config(self, params: dict) -> TrainConfig:
        """The run of a point: the base config, the recipe, the point's layers."""
        return resolve_config(self.overrides(params), self.base)

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def digest(self) -> str:
        """8 hex digits naming the space and recipe (a study name's suffix)."""
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def default_space(profile: str = "full", budget_type: str = "4bitsym", device="auto",
                  seed: int = 0) -> Space:
    """Chapter 22's setting as a space: its types and recipe, as many hidden layers as
    its widths, the widths of ``WIDTHS[profile]``, and its budget (the uniform
    ``budget_type`` model's packed size)."""
    S, common = mixed_settings(dict(profile=profile, device=device, seed=seed))
    recipe = {k: v for k, v in common.items() if k != "widths"}
    return Space(types=list(S.types), widths=list(WIDTHS[profile]), hidden=len(S.widths),
                 budget=budget_bytes(S, budget_type), recipe=recipe)


def space_from_args(profile="full", types=None, widths=None, hidden=None, budget=None,
                    overrides=()) -> Space:
    """The default space of a profile with the command line's changes (``--types``,
    ``--widths``, ``--hidden``, ``--budget``, ``--set key=value`` for the recipe)."""
    space = default_space(profile)
    recipe = {**space.recipe, **parse_overrides(overrides)}
    try:
        return Space(types=types or space.types, widths=widths or space.widths,
                     hidden=hidden or space.hidden,
                     budget=space.budget if budget is None else budget, recipe=recipe)
    except ConfigError as e:
        raise SearchError(f"--set: {e}") from None
