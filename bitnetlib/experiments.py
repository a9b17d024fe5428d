"""Cached training runs, sweeps, profiles and provenance for the book's chapters.

A run is keyed by a hash of its resolved configuration (``config_dict``): the same
configuration trained twice lands in the same directory ``<cache_dir>/<key>/`` and the
second call only loads it. A chapter rerun therefore trains only what changed.

Force recomputation with ``run_cached(..., recompute=True)`` or the environment
variable ``BITNET_RECOMPUTE=1`` (retrains every run it touches). The cache lives in
``runs/cache`` beside the package, or in ``$BITNET_CACHE``.
"""
import datetime
import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from tqdm import tqdm

from .config import ConfigError, TrainConfig, config_dict, load_config, make_config
from .data import REPO_ROOT, load_mnist
from .train import load_run, resolve_device, save_json, train

PROFILES = ("smoke", "full")
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


def is_finished(run_dir: Path, cfg: TrainConfig) -> bool:
    """model.pt and metrics.json exist and were written with exactly this config."""
    if not ((run_dir / "model.pt").exists() and (run_dir / "metrics.json").exists()):
        return False
    saved = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=False)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return saved.get("config") == config_dict(cfg) and len(metrics) == cfg.epochs


def run_cached(cfg_or_overrides, cache_dir=None, base=None, recompute=None, data=None,
               progress=False, log=None):
    """Train a configuration once; afterwards return the stored result.

    Returns (model, metrics list) as ``bitnetlib.train.train`` does. ``recompute``
    (or ``BITNET_RECOMPUTE=1``) retrains from scratch even when a finished run exists.
    """
    cfg = resolve_config(cfg_or_overrides, base)
    run_dir = cache_root(cache_dir) / config_key(cfg)
    fresh = recompute_requested(recompute)
    if not fresh and is_finished(run_dir, cfg):
        _, model = load_run(run_dir, resolve_device(cfg.device))
        return model, json.loads((run_dir / "metrics.json").read_text())
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


def total_bits(metrics_or_layers) -> float:
    """Total weight bits of a run (final epoch) or of a ``layers`` list."""
    layers = metrics_or_layers
    if layers and "layers" in layers[-1]:
        layers = layers[-1]["layers"]
    return sum(s["bits"] for s in layers)


def n_weights(metrics_or_layers) -> int:
    layers = metrics_or_layers
    if layers and "layers" in layers[-1]:
        layers = layers[-1]["layers"]
    return sum(s["n_weights"] for s in layers)


def profile_settings(profile: str, smoke: dict, full: dict, **given) -> SimpleNamespace:
    """The chapter's settings: the profile's defaults, then every knob not None."""
    if profile not in PROFILES:
        raise ValueError(f"parameter 'profile': {profile!r} is not one of {', '.join(PROFILES)}")
    unknown = set(given) - set(smoke) - set(full)
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)}; valid: {sorted(smoke)}")
    values = dict(smoke if profile == "smoke" else full)
    changed = sorted(k for k, v in given.items() if v is not None and v != values.get(k))
    values.update({k: v for k, v in given.items() if v is not None})
    return SimpleNamespace(profile=profile, changed=changed, **values)


CAPACITY_TYPES = ["Binary", "Ternary", "2bitsym", "4bitsym", "8bit"]


def capacity_sweep(profile: str, device="auto", seed=0, desc="capacity sweep", **knobs):
    """The capacity sweep of chapters 4 and 5 (one QAT run per type and width, the
    write-up's 30-epoch step schedule, no augmentation): (settings, runs). Both chapters
    call it, so chapter 5 reads chapter 4's runs from the cache."""
    S = profile_settings(
        profile,
        smoke=dict(epochs=3, train_subset=4000, widths=[8, 16, 32], types=CAPACITY_TYPES,
                   step_size=1, threads=1, compile=False),
        full=dict(epochs=30, train_subset=0, widths=[16, 24, 32, 48, 64, 96, 128],
                  types=CAPACITY_TYPES, step_size=10, threads=0, compile=True),
        **knobs)
    if S.threads:
        torch.set_num_threads(S.threads)
    common = dict(epochs=S.epochs, train_subset=S.train_subset, augment=False, lr=0.01,
                  scheduler="step", step_size=S.step_size, step_gamma=0.1, compile=S.compile,
                  device=device, seed=seed)
    grid = [{"quant": q, "widths": [w] * 3} for q in S.types for w in S.widths]
    return S, sweep(grid, common=common, desc=desc)


def git_commit() -> str:
    """HEAD's short hash, with '+dirty' when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD") or "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def device_name(device: str = "auto") -> str:
    dev = resolve_device(device)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    cpu = platform.machine()
    try:
        names = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"cpu ({cpu}, {torch.get_num_threads()} torch threads)"


def provenance(profile: str, started: float, device: str = "auto") -> dict:
    """Commit, date, device, profile and wall time (seconds since ``started``)."""
    return {"commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "device": device_name(device), "profile": profile,
            "torch": torch.__version__,
            "wall time": f"{time.perf_counter() - started:.1f} s"}


def markdown_table(rows: list, columns=None) -> str:
    """A Markdown table from a list of dicts (floats shown with 4 significant digits)."""
    columns = columns or list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


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


def first_layer_images(model) -> torch.Tensor:
    """The first linear layer's quantized weights as (out, 16, 16) images."""
    from .layers import quant_layers
    layer = quant_layers(model)[0]
    w = layer.quantized_weight() if layer.is_quantized else layer.weight.detach()
    return w.detach().cpu().reshape(w.shape[0], 16, 16)


def plot_weight_grid(images, ax_title="", cols=8, size=1.0):
    """A grid of signed weight images (blue negative, red positive), one per row of w."""
    import matplotlib.pyplot as plt
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size))
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, images):
        lim = float(img.abs().max()) or 1.0
        ax.imshow(img, cmap="bwr", vmin=-lim, vmax=lim)
    fig.suptitle(ax_title)
    fig.tight_layout()
    return fig


# --- The write-up's figures (data, quoted with their source) -----------------------------
# Every figure the book sets beside ours. "seed" is the write-up text in ../shared/seeds/
# (001_d09a775815afc45b.txt); "anchor" is ../shared/anchor-facts.md (the reference code's
# reported and re-measured figures). None: the source gives no figure. ``point`` is
# (weight bytes, accuracy %) for plots: bits / 8 where the source gives bits, the
# lowest reported accuracy where it gives a range; ``ms`` the (lowest, highest) reported
# inference time on the CH32V003 at 48 MHz, where it gives one.
WRITEUP = {
    "FC 4bitsym 64/64/64": dict(
        acc="99.02 (C engine)", bytes="12.3 KB (100,864 bits)", mismatches="3 in 10,000",
        cycles="about 650,000 (13.66 ms at 48 MHz, CH32V003)",
        train_time="25.5 s/epoch x 60 on a 2-core CPU (reference code rerun)",
        source="seed: 'Verification' and 'Implementation on the CH32V003'; anchor: measured",
        point=(12608, 99.02), ms=(13.66, 13.66)),
    "FC FP130 64/64/64": dict(
        acc="98.66 - 98.86", bytes="12.3 KB (same shape, 4 bits)", mismatches=None,
        cycles="10.03 - 10.17 ms at 48 MHz (about 482,000 - 488,000)", train_time=None,
        source="seed: 'FP1.3.0' update; anchor: reported figures", point=(12608, 98.66),
        ms=(10.03, 10.17)),
    "FC 2bitsym 1 KB": dict(
        acc="94.22", bytes="1.1 KB (4,512 weights)", mismatches=None,
        cycles="1.88 - 2.08 ms at 48 MHz (about 90,000 - 100,000)", train_time=None,
        source="seed: 'Implementation on the CH32V003'; anchor: reported figures",
        point=(1128, 94.22), ms=(1.88, 2.08)),
    "CNN 64": dict(
        acc="99.53 (60 epochs)", bytes="11.0 KB (90,112 bits)", mismatches="4 in 10,000",
        cycles="2.74 M on the CH32V002 (57 ms; needs more than 2 KB RAM)", train_time=None,
        source="seed: 'Aug 15th, 2024: CNN'; anchor: reported figures", point=(11264, 99.53)),
    "CNN 16": dict(
        acc="98.92 (3.2 KB variant)", bytes="3.2 KB", mismatches=None, cycles="14.3 ms",
        train_time=None, source="anchor: reported figures (a smaller head than ours)",
        point=(3277, 98.92)),
}

# The book's key models: name -> (config at `full`, config at `smoke`).
HEADLINE_MODELS = {
    "FC 4bitsym 64/64/64": ("configs/fc_4bitsym_64x3_aug.yaml",) * 2,
    "FC FP130 64/64/64": ("configs/fc_fp130_64x3_aug.yaml",) * 2,
    "FC 2bitsym 1 KB": ("configs/fc1k_2bitsym.yaml",) * 2,
    "CNN 64": ("configs/cnn64.yaml", "configs/cnn16.yaml"),
}
# Smoke settings shared by chapters 00, 14 and 16, so their cached runs are the same runs.
SMOKE_TRAIN = dict(epochs=2, train_subset=4000, augment=False, compile=False)


def headline_settings(profile: str, device="auto", seed=0, **knobs):
    """(settings, common run overrides) of the headline models, shared by chapters 0, 13
    and 14 so that they train each model once and read it from the cache after."""
    S = profile_settings(
        profile,
        smoke=dict(**SMOKE_TRAIN, threads=1),
        full=dict(epochs=60, train_subset=0, augment=True, compile=True, threads=0),
        **knobs)
    if S.threads:
        torch.set_num_threads(S.threads)
    common = dict(epochs=S.epochs, train_subset=S.train_subset, augment=S.augment,
                  compile=S.compile, device=device, seed=seed)
    return S, common


def run_dir_of(cfg) -> Path:
    """The cache directory of a (resolved) configuration's run."""
    return cache_root() / config_key(resolve_config(cfg))


def cached_result(path: Path, key_name: str, key: str, compute, seconds_key: str,
                  recompute=None) -> dict:
    """``compute()``'s dict, stored atomically at ``path`` under ``{key_name: key}`` and
    returned from there while the key matches (and no recomputation is requested); the
    wall time goes in ``seconds_key``."""
    if not recompute_requested(recompute) and path.exists():
        saved = json.loads(path.read_text())
        if saved.get(key_name) == key:
            return saved["result"]
    t0 = time.perf_counter()
    result = compute()
    result[seconds_key] = round(time.perf_counter() - t0, 1)
    save_json(path, {key_name: key, "result": result})
    return result


def verify_cached(cfg, recompute=None) -> dict:
    """``bitnetlib.engine.verify`` of a cached run (all 10,000 test images), stored in the
    run directory as verify.json keyed by the C engine's source hash."""
    from . import engine
    run_dir = run_dir_of(cfg)
    return cached_result(run_dir / "verify.json", "engine", engine.source_hash(),
                         lambda: engine.verify(run_dir), "verify_seconds", recompute)


def firmware_source_hash() -> str:
    """Hash of everything that decides an emulated firmware run: the C engine, the
    firmware sources and the Python harness (build, export, emulator, cycle model)."""
    h = hashlib.sha256()
    paths = sorted(p for d in ("c_engine", "firmware") for p in (REPO_ROOT / d).iterdir()
                   if p.is_file() and p.suffix in ("", ".c", ".h", ".S", ".ld"))
    for p in paths + [REPO_ROOT / "bitnetlib" / n for n in ("mcu.py", "export.py")]:
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def mcu_cached(cfg, kernel: str = "fast", images: int = 10, recompute=None) -> dict:
    """``bitnetlib.mcu.mcu_run`` of a cached run in the emulated CH32V003, stored in the
    run directory as mcu_<kernel>_<images>.json keyed by ``firmware_source_hash``."""
    from . import mcu
    run_dir = run_dir_of(cfg)
    return cached_result(run_dir / f"mcu_{kernel}_{images}.json", "firmware",
                         firmware_source_hash(),
                         lambda: mcu.mcu_run(run_dir, kernel=kernel, images=images,
                                             log=lambda s: None),
                         "mcu_seconds", recompute)


def c_function(name: str) -> str:
    """The source text of one C function of the engine (c_engine/*.c), signature to '}'."""
    import re
    for src in sorted((REPO_ROOT / "c_engine").glob("*.c")):
        text = src.read_text()
        for m in re.finditer(rf"^[A-Za-z_][\w \*]*\b{re.escape(name)}\(", text, re.M):
            rest = text[m.end():]
            if rest.find("{") < rest.find(";") or ";" not in rest:   # a definition
                end = text.index("\n}\n", m.start()) + 2
                return text[m.start():end]
    raise KeyError(f"no C function {name!r} in c_engine/*.c")


def kernel_instructions(extra_flags=("-O2",)) -> dict:
    """Per FC kernel of c_engine/bn_kernels.c compiled for this host: machine
    instructions in the function and how many of them are multiplies (objdump)."""
    import re
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "k.o"
        subprocess.run(["gcc", "-std=c99", *extra_flags, "-c", "-o", str(obj),
                        str(REPO_ROOT / "c_engine" / "bn_kernels.c")], check=True)
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(obj)],
                             capture_output=True, text=True, check=True).stdout
    out, name = {}, None
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(\w+)>:", line)
        if m:
            name = m.group(1)
            out[name] = {"instructions": 0, "multiplies": 0}
        elif name and re.match(r"^\s+[0-9a-f]+:\s+\S", line):
            op = line.split(":", 1)[1].split()[0]
            out[name]["instructions"] += 1
            out[name]["multiplies"] += op.startswith(("imul", "mul"))
    return out


def pruned_copy(model, cfg, method: str, density: float):
    """A copy of a trained model pruned by ``method`` ('l1', 'random') to ``density``,
    its clips re-chosen from the kept weights as the first fine-tuning epoch does: the
    accuracy of pruning without fine-tuning."""
    import copy
    from .prune import prune_model
    from .train import update_clips
    pruned = copy.deepcopy(model)
    prune_model(pruned, method, density, cfg.seed)
    update_clips(pruned, cfg, 0)
    return pruned.eval()


def checkpoint_model(cfg):
    """The trained weights of a finished cached run's last epoch (checkpoint.pt): for
    runs whose model.pt holds something else, such as the weight average (swa)."""
    from .models import build_model
    cfg = resolve_config(cfg)
    device = resolve_device(cfg.device)
    ckpt = torch.load(run_dir_of(cfg) / "checkpoint.pt", map_location=device, weights_only=False)
    model = build_model(cfg).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval()
