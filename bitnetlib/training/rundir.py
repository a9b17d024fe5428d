"""The run directory's files: atomic writes, the checkpoint, the finished model.

RUN_DIR layout (every file written to a temporary name, then renamed):
    config.yaml      the resolved configuration
    checkpoint.pt    model + optimizer + metrics after the last finished epoch
    metrics.json     per epoch: losses, accuracies, seconds, LR, per-layer clip/entropy
    model.pt         the final model (state dict + config), written when training ends;
                     with swa_start_epoch, the weight average (bitnetlib.training.swa)
"""
import json
import os
from pathlib import Path

import torch

from .config import TrainConfig, config_dict, make_config
from .data import REPO_ROOT
from .models import build_model

RUN_REF = "run:"       # a config value "run:<key>" names a finished run by its key


def cache_root(cache_dir=None) -> Path:
    """Where runs are trained (with checkpoints): ``$BITNET_CACHE`` or runs/cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("BITNET_CACHE") or REPO_ROOT / "runs" / "cache")


def store_root() -> Path:
    """The committed results store (book/store.py): ``$BITNET_STORE`` or results/runs."""
    return Path(os.environ.get("BITNET_STORE") or REPO_ROOT / "results" / "runs")


def resolve_run(ref) -> Path:
    """A run directory from a path or a ``run:<key>`` reference (``init_from``,
    ``teacher``): the store's entry if it has one, else the run cache's. A reference by
    key keeps a config's own key the same on every machine and checkout."""
    ref = str(ref)
    if not ref.startswith(RUN_REF):
        return Path(ref)
    key = ref[len(RUN_REF):]
    for root in (store_root(), cache_root()):
        if (root / key / "model.pt").exists():
            return root / key
    raise FileNotFoundError(f"{ref}: no finished run with this key in {store_root()} or "
                            f"{cache_root()}; train it first")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA GPU is available; use device=cpu")
    return torch.device(name)


def atomic_write(path: Path, write):
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_json(path: Path, obj):
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=1)))


def load_checkpoint(run_dir: Path, cfg: TrainConfig, model, opt, device, swa=None):
    """Restore a matching checkpoint (and the weight average, if any); returns
    (next epoch, metrics list)."""
    ckpt_path = run_dir / "checkpoint.pt"
    if not ckpt_path.exists():
        return 0, []
    try:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
    except Exception as e:
        raise RuntimeError(f"{ckpt_path}: unreadable checkpoint ({e}); delete it to start over")
    if ckpt["config"] != config_dict(cfg):
        raise RuntimeError(f"{ckpt_path} was written with a different config; use another "
                           f"--out directory or --fresh to start over")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    if swa is not None:
        swa.load_state_dict(ckpt["swa"])
    return ckpt["epoch"] + 1, ckpt["metrics"]


def load_run(run_dir, device="cpu"):
    """(config, model) from a finished run's model.pt (a path or ``run:<key>``)."""
    path = resolve_run(run_dir) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (bitnet train)")
    saved = torch.load(path, map_location=device, weights_only=False)
    cfg = make_config(saved["config"], str(path))
    model = build_model(cfg).to(device)
    model.load_state_dict(saved["model"])
    model.eval()
    return cfg, model
