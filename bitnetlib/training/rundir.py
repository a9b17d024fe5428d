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

from .config import TrainConfig, config_dict, config_diff, make_config
from .models import build_model


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
        raise RuntimeError(f"{ckpt_path} was written with a different config "
                           f"({config_diff(ckpt['config'], config_dict(cfg))}); use another "
                           f"--out directory or --fresh to start over")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    if swa is not None:
        swa.load_state_dict(ckpt["swa"])
    return ckpt["epoch"] + 1, ckpt["metrics"]


def load_run(run_dir, device="cpu"):
    """(config, model) from a finished run's model.pt."""
    path = Path(run_dir) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (bitnet train)")
    saved = torch.load(path, map_location=device, weights_only=False)
    cfg = make_config(saved["config"], str(path))
    model = build_model(cfg).to(device)
    model.load_state_dict(saved["model"])
    model.eval()
    return cfg, model
