"""The headline models as the results store has them (``bitnet results``).

Reads the store only: a model whose run, C-engine check or emulator run is not in the
store has None in those fields (nothing is computed here).
"""
import json

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
    """Store entries of the same configuration with any seed (mean over seeds)."""
    want = {k: v for k, v in config_dict(cfg).items() if k != "seed"}
    out = []
    for key, _ in store.entries():
        entry = store.stored(key)
        c = yaml.safe_load((entry / "config.yaml").read_text())
        if {k: v for k, v in c.items() if k != "seed"} == want:
            out.append(entry)
    return out


def headline_row(name: str, path: str) -> dict:
    cfg = resolve_config({**FULL_TRAIN, "device": "auto", "seed": 0}, path)
    entry = store.stored(config_key(cfg))
    run = json.loads((entry / "run.json").read_text()) if (entry / "run.json").exists() else {}
    v = _stored_json(entry, "verify.json")
    fast = _stored_json(entry, f"mcu_fast_{MCU_IMAGES}.json")
    base = _stored_json(entry, f"mcu_baseline_{MCU_IMAGES}.json")
    seeds = [_stored_json(e, "verify.json").get("acc_c") for e in seed_runs(cfg)]
    seeds = [a for a in seeds if a is not None]
    return dict(name=name, config=path, profile="full", in_store=bool(run),
                acc_fakequant=v.get("acc_fakequant"), acc_int=v.get("acc_int"),
                acc_c=v.get("acc_c"), n_seeds=len(seeds),
                acc_c_mean=sum(seeds) / len(seeds) if len(seeds) > 1 else None,
                weight_bytes=fast.get("weight_bytes"), mismatch_c_int=v.get("mismatch_c_int"),
                cycles_baseline=base.get("cycles_mean"), cycles_fast=fast.get("cycles_mean"),
                flash_bytes=fast.get("flash_bytes"), ram_bytes=fast.get("ram_bytes"),
                fits_v003=fast.get("fits_ch32v003"), commit=run.get("commit"),
                date=run.get("date"))


def headline_results() -> list:
    return [headline_row(name, full) for name, (full, _) in HEADLINE_MODELS.items()]


def format_rows(rows) -> str:
    fmt = lambda v: "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
    cols = ("name", "acc_c", "n_seeds", "acc_c_mean", "cycles_fast", "flash_bytes",
            "ram_bytes", "fits_v003", "date")
    lines = ["  ".join(cols)]
    lines += ["  ".join(fmt(r[c]) for c in cols) for r in rows]
    return "\n".join(lines) + f"\n(store: {store.store_root()}, run cache: {cache_root()})"
