"""The book's runs: looked up in the results store, else trained once and cached.

A run is keyed by a hash of its resolved configuration (``config_dict``). ``run_cached``
returns the results store's entry (``results/runs/<key>/``, book/store.py) if there is
one, else the run cache's (``runs/cache/<key>/`` beside the package, or
``$BITNET_CACHE``), else trains it there. A chapter rerun therefore trains only what
changed. The environment decides the rest:

    BITNET_TRAIN=0      never train: a missing run is a ``MissingRuns`` error naming
                        every missing run of the call and the command that computes it
                        (``make book`` at ``full`` builds from the store this way)
    BITNET_PUBLISH=1    copy every run trained or found in the run cache into the store
    BITNET_RECOMPUTE=1  retrain every run it touches (``run_cached(recompute=True)``)
"""
import contextlib
import hashlib
import io
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from tqdm import tqdm

from ..training.config import ConfigError, TrainConfig, config_dict, load_config, make_config
from ..training.data import REPO_ROOT, load_mnist
from ..training.rundir import (FRESH, RUN_REF, RunDirError, cache_root, inspect_run, load_run,
                               model_file, resolve_device, store_root)
from ..training.train import train
from . import store
from .provenance import device_name, git_commit

_DATA = {}     # (root, device, subset) -> MnistTensors, shared by the runs of a chapter


def resolve_config(cfg_or_overrides, base=None) -> TrainConfig:
    """A TrainConfig from a TrainConfig, a dict of overrides or ``key=value`` strings,
    applied over ``base`` (a YAML path, relative to the repository root, or None)."""
    if isinstance(cfg_or_overrides, TrainConfig):
        return cfg_or_overrides
    if base is not None and not Path(base).is_absolute() and not Path(base).exists():
        base = REPO_ROOT / base
    if isinstance(cfg_or_overrides, dict):
        cfg = load_config(base)
        return make_config({**config_dict(cfg), **cfg_or_overrides}, str(base or "overrides"))
    if isinstance(cfg_or_overrides, (list, tuple)):
        return load_config(base, cfg_or_overrides)
    raise ConfigError(f"run_cached: expected a TrainConfig, dict or list of key=value, "
                      f"got {type(cfg_or_overrides).__name__}")


def config_key(cfg: TrainConfig) -> str:
    """16 hex digits of the SHA-256 of the resolved configuration."""
    text = json.dumps(config_dict(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recompute_requested(recompute=None) -> bool:
    if recompute is not None:
        return bool(recompute)
    return env_flag("BITNET_RECOMPUTE", False)


def cached_data(cfg: TrainConfig):
    """MNIST for a config, loaded once per (data_root, device, train_subset)."""
    device = resolve_device(cfg.device)
    key = (cfg.data_root, str(device), cfg.train_subset)
    if key not in _DATA:
        _DATA[key] = load_mnist(cfg.data_root or None, device, cfg.train_subset)
    return _DATA[key]


class CacheError(RuntimeError):
    """A damaged run in the cache: names its directory and how to recompute it."""


def recompute_hint(run_dir: Path) -> str:
    return (f"recompute it: rm -r {run_dir} and rerun the chapter, or "
            f"BITNET_RECOMPUTE=1 make book-run CHAPTERS=<this chapter>")


@contextlib.contextmanager
def damaged_run_is_cache_error(run_dir: Path):
    """A RunDirError of a cached run that asks for a fresh start (a damaged or
    inconsistent file) becomes a CacheError that says how to recompute the run."""
    try:
        yield
    except RunDirError as e:
        if e.advice != FRESH:
            raise
        raise CacheError(f"book run cache {run_dir}: {e.problem}; "
                         f"{recompute_hint(run_dir)}") from e


def finished_state(run_dir: Path, cfg: TrainConfig, device="cpu"):
    """``rundir.inspect_run``'s state of a cached run, or None where there is no model.pt."""
    if not model_file(run_dir).exists():
        return None
    return inspect_run(run_dir, cfg, device, log=lambda s: None)


def is_finished(run_dir: Path, cfg: TrainConfig) -> bool:
    """model.pt and metrics.json exist and were written with exactly this config; a
    damaged run is a CacheError."""
    with damaged_run_is_cache_error(run_dir):
        state = finished_state(run_dir, cfg)
    return bool(state and state.finished)


class MissingRuns(RuntimeError):
    """Runs a chapter needs that the store lacks, while training is off (BITNET_TRAIN=0)."""

    def __init__(self, cfgs):
        self.keys = [config_key(c) for c in cfgs]
        runs = "; ".join(f"{config_key(c)} ({describe(c)})" for c in cfgs)
        super().__init__(f"{len(cfgs)} run(s) missing from the results store "
                         f"({store_root()}): {runs}. Compute them with `make results "
                         f"CHAPTERS=<this chapter>` (trains them and publishes them to "
                         f"the store)")


def missing_runs(cfgs) -> MissingRuns:
    """The error for runs the store lacks; they are also appended to the list named by
    ``$BITNET_WANTED`` (one config per line), from which ``book.fill`` computes them."""
    path = os.environ.get("BITNET_WANTED")
    if path:
        with open(path, "a") as f:
            f.writelines(json.dumps(config_dict(c)) + "\n" for c in cfgs)
    return MissingRuns(cfgs)


def describe(cfg: TrainConfig) -> str:
    """A short description of a config for messages: model, widths, types, epochs."""
    q = "/".join(cfg.quant_per_layer) if cfg.quant_per_layer else cfg.quant if \
        cfg.selfcomp == "none" else f"selfcomp {cfg.selfcomp} gamma {cfg.selfcomp_gamma:g}"
    what = {"fc": "fc", "fc_moe": f"fc_moe {cfg.moe_experts}x"}.get(cfg.model, f"{cfg.model}{cfg.cnn_channels}")
    return f"{what} {cfg.widths} {q}, {cfg.epochs} epochs, seed {cfg.seed}"


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value not in ("", "0", "1", "false", "true", "no", "yes"):
        raise ValueError(f"{name}={value!r}: expected 0 or 1")
    return default if value == "" else value in ("1", "true", "yes")


def finished_dir(cfg: TrainConfig, cache_dir=None):
    """The directory of this config's finished run: the store's entry, else the run
    cache's; None if neither has it."""
    key = config_key(cfg)
    for d in (store.stored(key), cache_root(cache_dir) / key):
        if is_finished(d, cfg):
            return d
    return None


def train_and_publish(cfg, cache_dir, fresh, data, progress, log):
    """Train into the run cache; with BITNET_PUBLISH=1 publish the run to the store."""
    run_dir = cache_root(cache_dir) / config_key(cfg)
    t0 = time.perf_counter()
    result = train(cfg, run_dir, fresh=fresh, progress=progress,
                   log=log or (lambda s: None), data=data)
    if env_flag("BITNET_PUBLISH", False):
        publish(cfg, run_dir, time.perf_counter() - t0)
    return result


def publish(cfg, run_dir, wall_seconds=None) -> Path:
    """Copy a finished cached run into the results store with its provenance."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    if wall_seconds is None:                 # trained earlier: the epochs' own time
        wall_seconds = sum(m["seconds"] for m in metrics)
    prov = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit=git_commit(),
                machine=device_name(cfg.device), torch=torch.__version__,
                wall_seconds=round(wall_seconds, 1), epochs=len(metrics))
    files = {name: (run_dir / name).read_bytes() for name in store.RUN_FILES}
    if cfg.swa_start_epoch >= 0:      # model.pt is the average: keep the last iterate too
        files[store.LAST_ITERATE] = last_iterate_bytes(run_dir)
    return store.publish_files(config_key(cfg), files, prov)


def last_iterate_bytes(run_dir: Path) -> bytes:
    """The last epoch's weights of a run (from its checkpoint), as a model.pt file."""
    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    buf = io.BytesIO()
    torch.save(dict(config=ckpt["config"], model=ckpt["model"]), buf)
    return buf.getvalue()


RUNS_READ = {}     # key -> run.json of every store run read in this process (provenance)


def run_cached(cfg_or_overrides, cache_dir=None, base=None, recompute=None, data=None,
               progress=False, log=None):
    """Train a configuration once; afterwards return the stored result.

    Returns (model, metrics list) as ``bitnetlib.training.train.train`` does. ``recompute``
    (or ``BITNET_RECOMPUTE=1``) retrains from scratch even when a finished run exists.
    """
    cfg = resolve_config(cfg_or_overrides, base)
    fresh = recompute_requested(recompute)
    device = resolve_device(cfg.device)
    found = None if fresh else finished_dir(cfg, cache_dir)
    if found is not None:
        if env_flag("BITNET_PUBLISH", False) and found.parent != store_root():
            found = publish(cfg, found)
        if found.parent == store_root():
            RUNS_READ[found.name] = json.loads((found / "run.json").read_text())
        with damaged_run_is_cache_error(found):
            _, model = load_run(found, device)
        return model, store.full_metrics(store.stored_metrics(found))
    if not env_flag("BITNET_TRAIN", True):
        raise missing_runs([cfg])
    with damaged_run_is_cache_error(cache_root(cache_dir) / config_key(cfg)):
        data = data if data is not None else cached_data(cfg)
        return train_and_publish(cfg, cache_dir, fresh, data, progress, log)


def sweep(grid, base=None, common=None, desc="runs", **kwargs):
    """Run (cached) every override dict in ``grid`` on top of ``common``.

    Returns a list of SimpleNamespace(cfg, model, metrics, last) where ``last`` is
    the final epoch's metrics dict; ``kwargs`` go to ``run_cached``. With training off,
    every missing run of the grid is named at once.
    """
    cfgs = [resolve_config({**(common or {}), **overrides}, base) for overrides in grid]
    if not recompute_requested(kwargs.get("recompute")):
        require(cfgs, kwargs.get("cache_dir"))
    results = []
    for cfg in tqdm(cfgs, desc=desc, mininterval=5):
        model, metrics = run_cached(cfg, **kwargs)
        results.append(SimpleNamespace(cfg=cfg, model=model, metrics=metrics, last=metrics[-1]))
    return results


def require(cfgs, cache_dir=None):
    """With training off (BITNET_TRAIN=0), name every run of ``cfgs`` that has no
    finished run at once, as one MissingRuns; with training on, nothing. A chapter that
    fetches its runs one by one calls it first, so that ``make results`` learns all of
    them in one pass."""
    if env_flag("BITNET_TRAIN", True):
        return
    missing = [c for c in map(resolve_config, cfgs) if finished_dir(c, cache_dir) is None]
    if missing:
        raise missing_runs(missing)


def run_dir_of(cfg) -> Path:
    """The directory of a (resolved) configuration's run: its store entry if it has
    one, else its run-cache directory."""
    cfg = resolve_config(cfg)
    return finished_dir(cfg) or cache_root() / config_key(cfg)


def run_ref(cfg) -> str:
    """``run:<key>``: how a config names another run (``init_from``, ``teacher``), so
    that its own key does not depend on where the runs live."""
    return RUN_REF + config_key(resolve_config(cfg))
