"""A chapter's settings, its provenance, and the settings chapters share.

A chapter starts with ``S = chapter(globals(), smoke=..., full=...)``: the profile's
settings, then every variable of the chapter's ``parameters`` cell that names a
setting and is not None (so no setting is typed twice); it sets torch's threads and
starts the clock that ``show_provenance(S)`` reports at the end.
"""
import time
from types import SimpleNamespace

import torch

from .cache import RUNS_READ, sweep
from .provenance import provenance, runs_note

PROFILES = ("smoke", "full")


class Settings(SimpleNamespace):
    """A chapter's settings; its repr (shown by chapters) leaves out the bookkeeping
    that ``chapter`` adds (device, seed and the clock; the parameters cell shows them)."""
    BOOKKEEPING = ("device", "seed", "started")

    def shown(self) -> SimpleNamespace:
        return SimpleNamespace(**{k: v for k, v in vars(self).items()
                                  if k not in self.BOOKKEEPING})

    def __repr__(self):
        return repr(self.shown())

    def _repr_pretty_(self, p, cycle):        # IPython: as a plain namespace would print
        p.pretty(self.shown())


def profile_settings(profile: str, smoke: dict, full: dict, **given) -> Settings:
    """The chapter's settings: the profile's defaults, then every knob not None."""
    if profile not in PROFILES:
        raise ValueError(f"parameter 'profile': {profile!r} is not one of {', '.join(PROFILES)}")
    unknown = set(given) - set(smoke) - set(full)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; valid: {sorted(smoke)}")
    values = dict(smoke if profile == "smoke" else full)
    changed = sorted(k for k, v in given.items() if v is not None and v != values.get(k))
    values.update({k: v for k, v in given.items() if v is not None})
    return Settings(profile=profile, changed=changed, **values)


def chapter(params: dict, smoke: dict, full: dict) -> Settings:
    """The settings of a chapter from its parameters (``globals()`` of the notebook, or a
    dict with at least ``profile``): ``profile_settings`` with every parameter that
    names a setting; also ``device`` and ``seed`` (defaults 'auto', 0) and ``started``.
    Sets torch's CPU threads when the settings have ``threads`` > 0."""
    given = {k: params[k] for k in {**smoke, **full} if k in params}
    S = profile_settings(params["profile"], smoke, full, **given)
    S.device, S.seed = params.get("device", "auto"), params.get("seed", 0)
    S.started = time.perf_counter()
    if getattr(S, "threads", 0):
        torch.set_num_threads(S.threads)
    return S


def show_provenance(S):
    """Display the chapter's provenance (the last cell of every chapter)."""
    from IPython.display import Markdown, display
    from .figures import markdown_table
    display(Markdown(markdown_table([provenance(S.profile, S.started, S.device)])))
    if RUNS_READ:
        display(Markdown(runs_note(RUNS_READ)))


def profile_note(s, epochs=None) -> str:
    """One Markdown sentence on what the profile's numbers can be compared with."""
    if s.profile == "smoke":
        subset = f"{s.train_subset} training images" if s.train_subset else "all training images"
        epochs = epochs if epochs is not None else s.epochs
        return (f"**Profile `smoke`** ({subset}, up to {epochs} epoch(s)): these numbers only show "
                f"that the code runs end to end; they are *not* comparable to the write-up's.")
    changed = getattr(s, "changed", [])
    if changed:
        return (f"**Profile `full` with changed parameters** ({', '.join(changed)}): not the "
                f"write-up's settings, so the numbers are not directly comparable to its.")
    return ("**Profile `full`**: the write-up's settings; the numbers below are comparable "
            "to the write-up's, up to seed-to-seed variation.")




# --- settings shared by several chapters (so their cached runs are the same runs)
SMOKE_TRAIN = dict(epochs=2, train_subset=4000, augment=False, compile=False)
FULL_TRAIN = dict(epochs=60, train_subset=0, augment=True, compile=True)   # the write-up's
CAPACITY_TYPES = ["Binary", "Ternary", "2bitsym", "4bitsym", "8bit"]


def capacity_sweep(params: dict, desc="capacity sweep"):
    """The capacity sweep of chapters 4 and 5 (one QAT run per type and width, the
    write-up's 30-epoch step schedule, no augmentation): (settings, runs). Both chapters
    call it, so chapter 5 reads chapter 4's runs from the cache."""
    S = chapter(
        params,
        smoke=dict(epochs=3, train_subset=4000, widths=[8, 16, 32], types=CAPACITY_TYPES,
                   step_size=1, threads=1, compile=False),
        full=dict(epochs=30, train_subset=0, widths=[16, 24, 32, 48, 64, 96, 128],
                  types=CAPACITY_TYPES, step_size=10, threads=0, compile=True))
    common = dict(epochs=S.epochs, train_subset=S.train_subset, augment=False, lr=0.01,
                  scheduler="step", step_size=S.step_size, step_gamma=0.1, compile=S.compile,
                  device=S.device, seed=S.seed)
    grid = [{"quant": q, "widths": [w] * 3} for q in S.types for w in S.widths]
    return S, sweep(grid, common=common, desc=desc)


# chapter 3's recipe (the write-up's QAT-vs-PTQ section): chapter 27 quantizes its float run
PTQ_RECIPE = dict(
    smoke=dict(epochs=3, train_subset=4000, widths=[64, 64, 64], step_size=1, threads=1,
               compile=False),
    full=dict(epochs=30, train_subset=0, widths=[64, 64, 64], step_size=10, threads=0,
              compile=True))


def ptq_recipe(s, device="auto", seed=0) -> dict:
    """Run overrides of chapter 3's recipe (Adam, lr 0.01 divided by 10 every
    ``step_size`` epochs, no augmentation) from settings with ``PTQ_RECIPE``'s keys,
    so that chapters 3 and 27 name the same runs."""
    return dict(widths=s.widths, epochs=s.epochs, train_subset=s.train_subset, augment=False,
                lr=0.01, scheduler="step", step_size=s.step_size, step_gamma=0.1,
                compile=s.compile, device=device, seed=seed)


def headline_settings(params: dict, smoke=None, full=None):
    """(settings, common run overrides) of the headline models, shared by chapters 0, 13,
    14, 15 and 26 so that they train each model once and read it from the cache after.
    ``smoke`` / ``full``: the chapter's own further settings per profile."""
    S = chapter(params, smoke=dict(**SMOKE_TRAIN, threads=1, **(smoke or {})),
                full=dict(**FULL_TRAIN, threads=0, **(full or {})))
    common = dict(epochs=S.epochs, train_subset=S.train_subset, augment=S.augment,
                  compile=S.compile, device=S.device, seed=S.seed)
    return S, common
