"""The results store: the book's full-profile runs, committed in ``results/``.

    results/runs/<key>/    one finished run; key = ``cache.config_key`` of its resolved
                           configuration (the same key as its run-cache directory)
        config.yaml        the resolved configuration
        metrics.json       per epoch: losses, accuracies, seconds, per-layer statistics
                           (code histograms of the final epoch only: compact_metrics)
        model.pt           the final weights: the model's float32 state dict and its
                           config, as ``training.rundir.load_run`` reads it (no
                           optimizer state, no checkpoint)
        run.json           provenance: date, commit, machine, torch, wall seconds
        last_model.pt      runs with weight averaging (swa) only: the last epoch's weights
        verify.json        C engine vs integer model vs fake-quant (``derived.verify_cached``)
        mcu_<kernel>_<n>.json  the emulated CH32V003 (``derived.mcu_cached``); both keyed
                           by a hash of the sources that computed them
        bitnet_model.h     the exported C header, written by the C-engine check

A run is trained into the run cache (``runs/cache/<key>/``, with checkpoints, so it can
be resumed) and then published here: the files are copied into a temporary
directory beside the target, which is renamed into place, so a reader never sees half
a run. An existing entry is never overwritten.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..training.data import REPO_ROOT
from ..training.rundir import json_text, store_root

RUN_FILES = ("config.yaml", "metrics.json", "model.pt")
LAST_ITERATE = "last_model.pt"


def stored(key: str) -> Path:
    return store_root() / key


def publish(run_dir, key: str, provenance: dict) -> Path:
    """Copy a finished run's files into the store as ``key`` (atomically; an existing
    entry is kept). Returns the entry's directory."""
    files = {name: (Path(run_dir) / name).read_bytes() for name in RUN_FILES}
    return publish_files(key, files, provenance)


PER_EPOCH_ONLY_LAST = ("histogram", "levels")


def compact_metrics(metrics: list) -> list:
    """The metrics as the store keeps them: every epoch's losses, accuracies and per-layer
    clip, entropy and sizes, but the code histogram (and its levels) of the final epoch
    only, the one the chapters read (an 8-bit run's histograms are most of its file).

    >>> m = [{"layers": [{"entropy": 1.0, "histogram": [1, 2], "levels": [-1, 1]}]}] * 2
    >>> compact_metrics(m)[0], compact_metrics(m)[1] == m[1]
    ({'layers': [{'entropy': 1.0}]}, True)
    """
    out = [{**e, "layers": [{k: v for k, v in layer.items() if k not in PER_EPOCH_ONLY_LAST}
                            for layer in e["layers"]]} if "layers" in e else e
           for e in metrics[:-1]]
    return out + metrics[-1:]


def publish_files(key: str, files: dict, provenance: dict) -> Path:
    """Write ``{name: bytes}`` and run.json as store entry ``key`` (atomically)."""
    missing = [n for n in RUN_FILES if n not in files]
    if missing:
        raise ValueError(f"run {key}: cannot publish without {', '.join(missing)}")
    final = stored(key)
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
    tmp.chmod(0o755)                        # mkdtemp makes it private
    try:
        for name, data in files.items():
            if name == "metrics.json":          # the compact form, whatever the worker wrote
                data = json_text(compact_metrics(json.loads(data))).encode()
            (tmp / name).write_bytes(data)
        (tmp / "run.json").write_text(json.dumps(provenance, indent=1))
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise
    return final


def entries() -> list:
    """[(key, run.json dict)] of every run in the store."""
    root = store_root()
    if not root.exists():
        return []
    return [(d.name, json.loads((d / "run.json").read_text()))
            for d in sorted(root.iterdir()) if (d / "run.json").exists()]


def size_bytes(root=None) -> int:
    root = Path(root or store_root().parent)
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def size_report() -> str:
    root = store_root().parent
    runs = entries()
    return (f"{root.relative_to(REPO_ROOT) if root.is_relative_to(REPO_ROOT) else root}: "
            f"{len(runs)} runs, {size_bytes() / 1e6:.1f} MB "
            f"(training wall time {sum(r.get('wall_seconds', 0) for _, r in runs) / 3600:.2f} h)")
