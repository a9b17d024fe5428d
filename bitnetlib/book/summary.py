"""The results store as a table (``bitnet results``): the headline models, and every
stored run with its accuracy, C-engine check and emulated CH32V003 figures.

Reads the store only: a model whose run, C-engine check or emulator run is not in the
store has None in those fields (nothing is computed here).
"""
import json
import statistics
from pathlib import Path

import yaml

from ..training.config import config_dict
from .cache import cache_root, config_key, resolve_config
from .chapter import FULL_TRAIN
from . import store
from .writeup import HEADLINE_MODELS

MCU_IMAGES = 100        # the emulator runs the book reports at full (chapters 0 and 15)


def _stored_json(entry, name):
    path = entry / name
    return json.loads(path.read_text())["result"] if path.exists() else {}


def seed_runs(cfg) -> list:
    """(entry, seed) of the store entries of the same configuration with any seed (mean
    over seeds); the thread count is no part of the recipe (the seed study trains
    single-threaded)."""
    other = ("seed", "threads")
    want = {k: v for k, v in config_dict(cfg).items() if k not in other}
    out = []
    for key, _ in store.entries():
        entry = store.stored(key)
        c = yaml.safe_load((entry / "config.yaml").read_text())
        if {k: v for k, v in c.items() if k not in other} == want:
            out.append((entry, c["seed"]))
    return out


def seed_accuracies(cfg) -> dict:
    """{seed: C-engine accuracy} of the stored runs of ``cfg`` with any seed: one per seed
    (a seed stored at two thread counts counts once), runs without a C check left out."""
    by_seed = {}
    for entry, seed in sorted(seed_runs(cfg)):
        acc = _stored_json(entry, "verify.json").get("acc_c")
        if acc is not None:
            by_seed.setdefault(seed, acc)
    return by_seed


def headline_row(name: str, path: str) -> dict:
    cfg = resolve_config({**FULL_TRAIN, "device": "auto", "seed": 0}, path)
    entry = store.stored(config_key(cfg))
    run = json.loads((entry / "run.json").read_text()) if (entry / "run.json").exists() else {}
    v = _stored_json(entry, "verify.json")
    fast = _stored_json(entry, f"mcu_fast_{MCU_IMAGES}.json")
    base = _stored_json(entry, f"mcu_baseline_{MCU_IMAGES}.json")
    seeds = list(seed_accuracies(cfg).values())
    spread = len(seeds) > 1
    return dict(name=name, config=path, profile="full", in_store=bool(run),
                acc_fakequant=v.get("acc_fakequant"), acc_int=v.get("acc_int"),
                acc_c=v.get("acc_c"), n_seeds=len(seeds),
                acc_c_mean=statistics.mean(seeds) if spread else None,
                acc_c_sd=statistics.stdev(seeds) if spread else None,
                # packed weights as exported (the book's figure); the fast build pads rows
                weight_bytes=base.get("weight_bytes"), weight_bytes_fast=fast.get("weight_bytes"),
                mismatch_c_int=v.get("mismatch_c_int"),
                cycles_baseline=base.get("cycles_mean"), cycles_fast=fast.get("cycles_mean"),
                flash_bytes=fast.get("flash_bytes"), ram_bytes=fast.get("ram_bytes"),
                fits_v003=fast.get("fits_ch32v003"), commit=run.get("commit"),
                date=run.get("date"))


def headline_results() -> list:
    return [headline_row(name, full) for name, (full, _) in HEADLINE_MODELS.items()]


def _mcu_images(path: Path) -> tuple:
    """(images checked, images timed) of an mcu_<kernel>_<n>[_t<timed>].json file.

    >>> _mcu_images(Path("mcu_fast_10000_t100.json")), _mcu_images(Path("mcu_fast_100.json"))
    ((10000, 100), (100, 100))
    """
    n, _, timed = path.stem.split("_", 2)[2].partition("_t")
    return int(n), int(timed or n)


def _mcu_fields(entry, kernel: str) -> dict:
    """The emulated run of ``kernel`` with the most images checked (then timed), if any."""
    found = sorted(entry.glob(f"mcu_{kernel}_*.json"), key=_mcu_images)
    return json.loads(found[-1].read_text())["result"] if found else {}


def run_row(key: str) -> dict:
    """One stored run: what it is, its final metrics, C-engine check and MCU figures."""
    entry = store.stored(key)
    c = yaml.safe_load((entry / "config.yaml").read_text())
    run = json.loads((entry / "run.json").read_text())
    last = store.stored_metrics(entry)[-1]
    v = _stored_json(entry, "verify.json")
    fast, base = _mcu_fields(entry, "fast"), _mcu_fields(entry, "baseline")
    return dict(key=key, model=c.get("model"), widths=c.get("widths"),
                quant=c.get("quant_per_layer") or c.get("quant"), epochs=c.get("epochs"),
                augment=c.get("augment"), seed=c.get("seed"),
                test_acc=last.get("test_acc"), test_loss=last.get("test_loss"),
                acc_c=v.get("acc_c"), mismatch_c_int=v.get("mismatch_c_int"),
                cycles_fast=fast.get("cycles_mean"), cycles_baseline=base.get("cycles_mean"),
                mcu_images=fast.get("images") or base.get("images"),
                flash_bytes=(fast or base).get("flash_bytes"),
                ram_bytes=(fast or base).get("ram_bytes"),
                fits_v003=(fast or base).get("fits_ch32v003"),
                wall_seconds=run.get("wall_seconds"), date=run.get("date"),
                commit=run.get("commit"), machine=run.get("machine"))


def run_rows() -> list:
    """``bitnet results runs``: every stored run."""
    return [run_row(k) for k, _ in store.entries()]


HEADLINE_COLS = ("name", "acc_c", "n_seeds", "acc_c_mean", "acc_c_sd", "cycles_fast",
                 "flash_bytes", "ram_bytes", "fits_v003", "date")
RUN_COLS = ("key", "model", "widths", "quant", "epochs", "seed", "test_acc", "acc_c",
            "cycles_fast", "ram_bytes", "fits_v003")


def format_rows(rows, cols=HEADLINE_COLS) -> str:
    fmt = lambda v: "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
    lines = ["  ".join(cols)]
    lines += ["  ".join(fmt(r[c]) for c in cols) for r in rows]
    return "\n".join(lines) + f"\n(store: {store.store_root()}, run cache: {cache_root()})"
