"""The book's run cache: training runs, sweeps and stored results, keyed by hash.

A run is keyed by a hash of its resolved configuration (``config_dict``): the same
configuration trained twice lands in the same directory ``<cache_dir>/<key>/`` and the
second call only loads it. A chapter rerun therefore trains only what changed.

Force recomputation with ``run_cached(..., recompute=True)`` or the environment
variable ``BITNET_RECOMPUTE=1`` (retrains every run it touches). The cache lives in
``runs/cache`` beside the package, or in ``$BITNET_CACHE``.
"""
import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

from tqdm import tqdm

from ..training.config import ConfigError, TrainConfig, config_dict, load_config, make_config
from ..training.data import REPO_ROOT, load_mnist
from ..training.models import build_model
from ..training.rundir import FRESH, RunDirError, inspect_run, model_from, read_torch_file
from ..training.train import resolve_device, save_json, train

_DATA = {}     # (root, device, subset) -> MnistTensors, shared by the runs of a chapter


def cache_root(cache_dir=None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("BITNET_CACHE") or REPO_ROOT / "runs" / "cache")


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
    value = os.environ.get("BITNET_RECOMPUTE", "").strip().lower()
    if value not in ("", "0", "1", "false", "true", "no", "yes"):
        raise ValueError(f"BITNET_RECOMPUTE={value!r}: expected 0 or 1")
    return value in ("1", "true", "yes")


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
    if not (run_dir / "model.pt").exists():
        return None
    return inspect_run(run_dir, cfg, device, log=lambda s: None)


def is_finished(run_dir: Path, cfg: TrainConfig) -> bool:
    """model.pt and metrics.json exist and were written with exactly this config; a
    damaged run is a CacheError."""
    with damaged_run_is_cache_error(run_dir):
        state = finished_state(run_dir, cfg)
    return bool(state and state.finished)


def run_cached(cfg_or_overrides, cache_dir=None, base=None, recompute=None, data=None,
               progress=False, log=None):
    """Train a configuration once; afterwards return the stored result.

    Returns (model, metrics list) as ``bitnetlib.training.train.train`` does. ``recompute``
    (or ``BITNET_RECOMPUTE=1``) retrains from scratch even when a finished run exists.
    """
    cfg = resolve_config(cfg_or_overrides, base)
    run_dir = cache_root(cache_dir) / config_key(cfg)
    fresh = recompute_requested(recompute)
    device = resolve_device(cfg.device)
    with damaged_run_is_cache_error(run_dir):
        state = None if fresh else finished_state(run_dir, cfg, device)
        if state and state.finished:
            return model_from(state.saved, run_dir / "model.pt", device)[1], state.metrics
        data = data if data is not None else cached_data(cfg)
        return train(cfg, run_dir, fresh=fresh, progress=progress,
                     log=log or (lambda s: None), data=data)


def sweep(grid, base=None, common=None, desc="runs", **kwargs):
    """Run (cached) every override dict in ``grid`` on top of ``common``.

    Returns a list of SimpleNamespace(cfg, model, metrics, last) where ``last`` is
    the final epoch's metrics dict; ``kwargs`` go to ``run_cached``.
    """
    results = []
    for overrides in tqdm(list(grid), desc=desc, mininterval=5):
        cfg = resolve_config({**(common or {}), **overrides}, base)
        model, metrics = run_cached(cfg, **kwargs)
        results.append(SimpleNamespace(cfg=cfg, model=model, metrics=metrics, last=metrics[-1]))
    return results


def run_dir_of(cfg) -> Path:
    """The cache directory of a (resolved) configuration's run."""
    return cache_root() / config_key(resolve_config(cfg))


def stored_result(path: Path) -> dict:
    """A stored result file's dict; {} (computed again) where it is unreadable."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def cached_result(path: Path, key_name: str, key: str, compute, seconds_key: str,
                  recompute=None) -> dict:
    """``compute()``'s dict, stored atomically at ``path`` under ``{key_name: key}`` and
    returned from there while the key matches (and no recomputation is requested); the
    wall time goes in ``seconds_key``."""
    if not recompute_requested(recompute) and path.exists():
        saved = stored_result(path)
        if saved.get(key_name) == key and isinstance(saved.get("result"), dict):
            return saved["result"]
    t0 = time.perf_counter()
    result = compute()
    result[seconds_key] = round(time.perf_counter() - t0, 1)
    save_json(path, {key_name: key, "result": result})
    return result


def verify_cached(cfg, recompute=None) -> dict:
    """``bitnetlib.pipeline.verify`` of a cached run (all 10,000 test images), stored in the
    run directory as verify.json keyed by the C engine's source hash."""
    from .. import pipeline
    from ..deploy import engine
    run_dir = run_dir_of(cfg)
    return cached_result(run_dir / "verify.json", "engine", engine.source_hash(),
                         lambda: pipeline.verify(run_dir), "verify_seconds", recompute)


def firmware_source_hash() -> str:
    """Hash of everything that decides an emulated firmware run: the C engine, the
    firmware sources and the Python harness (export, packing, build, emulator, cycle
    model, the run-directory steps)."""
    h = hashlib.sha256()
    paths = sorted(p for d in ("c_engine", "firmware") for p in (REPO_ROOT / d).iterdir()
                   if p.is_file() and p.suffix in ("", ".c", ".h", ".S", ".ld"))
    lib = REPO_ROOT / "bitnetlib"
    paths += sorted((lib / "deploy").glob("*.py")) + [lib / "training" / "export.py",
                                                        lib / "pipeline.py", lib / "wtypes.py"]
    for p in paths:
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def mcu_cached(cfg, kernel: str = "fast", images: int = 10, recompute=None) -> dict:
    """``bitnetlib.pipeline.mcu_run`` of a cached run in the emulated CH32V003, stored in the
    run directory as mcu_<kernel>_<images>.json keyed by ``firmware_source_hash``."""
    from .. import pipeline
    run_dir = run_dir_of(cfg)
    return cached_result(run_dir / f"mcu_{kernel}_{images}.json", "firmware",
                         firmware_source_hash(),
                         lambda: pipeline.mcu_run(run_dir, kernel=kernel, images=images,
                                             log=lambda s: None),
                         "mcu_seconds", recompute)


def checkpoint_model(cfg):
    """The trained weights of a finished cached run's last epoch (checkpoint.pt): for
    runs whose model.pt holds something else, such as the weight average (swa)."""
    cfg = resolve_config(cfg)
    device = resolve_device(cfg.device)
    run_dir = run_dir_of(cfg)
    with damaged_run_is_cache_error(run_dir):
        ckpt = read_torch_file(run_dir / "checkpoint.pt", "checkpoint", device)
    model = build_model(cfg).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval()
