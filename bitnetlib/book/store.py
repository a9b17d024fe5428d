"""The results store: the book's full-profile runs, committed in ``results/``.

    results/runs/<key>/    one finished run; key = ``cache.config_key`` of its resolved
                           configuration (the same key as its run-cache directory)
        config.yaml        the resolved configuration
        metrics.json.xz    per epoch: losses, accuracies, seconds, per-layer statistics
                           (7 significant digits, code histograms of the final epoch
                           only: compact_metrics), xz-compressed (``xz -dk`` gives
                           the JSON; ``stored_metrics`` reads it)
        model.pt.xz        the final weights: the model's float32 state dict and its
                           config (no optimizer state, no checkpoint), the run's model.pt
                           xz-compressed, lossless (``xz -dk`` gives the torch file;
                           ``training.rundir.load_run`` reads it as it is)
        run.json           provenance: date, commit, machine, torch, wall seconds
        last_model.pt.xz   runs with weight averaging (swa) only: the last epoch's weights
        verify.json        C engine vs integer model vs fake-quant (``derived.verify_cached``)
        mcu_<kernel>_<n>.json  the emulated CH32V003 (``derived.mcu_cached``); both keyed
                           by a hash of the sources that computed them (the exported
                           C header they use is written to the run cache: it is a build
                           product, made again from the weights in a second)

A run is trained into the run cache (``runs/cache/<key>/``, with checkpoints, so it can
be resumed) and then published here: the files are copied into a temporary
directory beside the target, which is renamed into place, so a reader never sees half
a run. An existing entry is never overwritten.
"""
import json
import lzma
import os
import shutil
import tempfile
from pathlib import Path

from ..training.data import REPO_ROOT
from ..training.rundir import XZ, json_text, metrics_file, metrics_text, store_root, xz_bytes

RUN_FILES = ("config.yaml", "metrics.json", "model.pt")
LAST_ITERATE = "last_model.pt"
# stored as NAME.xz (xz_bytes): the torch files and the metrics (JSON numbers: xz keeps
# about a sixth of them)
PACKED = ("model.pt", LAST_ITERATE, "metrics.json")


def stored(key: str) -> Path:
    return store_root() / key


def publish(run_dir, key: str, provenance: dict) -> Path:
    """Copy a finished run's files into the store as ``key`` (atomically; an existing
    entry is kept). Returns the entry's directory."""
    files = {name: (Path(run_dir) / name).read_bytes() for name in RUN_FILES}
    return publish_files(key, files, provenance)


PER_EPOCH_ONLY_LAST = ("histogram", "levels")


SIGNIFICANT_DIGITS = 7     # float32 carries about 7.2: the statistics lose nothing real


def rounded(x):
    """Every float in a JSON-like value to SIGNIFICANT_DIGITS.

    >>> rounded({"loss": [0.123456789, 2], "acc": 99.07000000000001})
    {'loss': [0.1234568, 2], 'acc': 99.07}
    """
    if isinstance(x, float):
        return float(f"{x:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(x, list):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x


FOLDED = "folded_layer_keys"   # final epoch: per-layer keys left out of the earlier ones


def compact_metrics(metrics: list) -> list:
    """The metrics as the store keeps them: every epoch's losses, accuracies and per-layer
    clip, entropy and sizes to 7 significant digits, but the code histogram (and its
    levels) of the final epoch only, the one the chapters read (an 8-bit run's
    histograms are most of its file), and a per-layer value that every epoch shares
    (type, shape, bytes of a fixed type) in the final epoch only, its key listed there
    under FOLDED; ``full_metrics`` puts them back.

    >>> m = [{"layers": [{"type": "4bitsym", "entropy": e, "histogram": [1, 2]}]} for e in (1.0, 2.0)]
    >>> c = compact_metrics(m)
    >>> c[0], c[1][FOLDED], full_metrics(c)[0]
    ({'layers': [{'entropy': 1.0}]}, ['type'], {'layers': [{'entropy': 1.0, 'type': '4bitsym'}]})
    """
    if FOLDED in metrics[-1]:                   # already compact
        return rounded(metrics)
    out = [{**e, "layers": [{k: v for k, v in layer.items() if k not in PER_EPOCH_ONLY_LAST}
                            for layer in e["layers"]]} if "layers" in e else e
           for e in metrics[:-1]]
    last = metrics[-1]
    shared = sorted({k for layer in last.get("layers", []) for k in layer
                     if k not in PER_EPOCH_ONLY_LAST} if out else ())
    shared = [k for k in shared if all(
        len(e.get("layers", [])) == len(last["layers"]) and
        all(k in a and k in b and a[k] == b[k] for a, b in zip(e["layers"], last["layers"]))
        for e in out)]
    if shared:
        out = [{**e, "layers": [{k: v for k, v in layer.items() if k not in shared}
                                for layer in e["layers"]]} for e in out]
        last = {**last, FOLDED: shared}
    return rounded(out + [last])


def full_metrics(metrics: list) -> list:
    """The store's metrics with the folded per-layer values back in every epoch."""
    shared = metrics[-1].get(FOLDED)
    if not shared:
        return metrics
    last = {k: v for k, v in metrics[-1].items() if k != FOLDED}
    fill = [{k: layer[k] for k in shared if k in layer} for layer in last["layers"]]
    return [{**e, "layers": [{**layer, **f} for layer, f in zip(e["layers"], fill)]}
            for e in metrics[:-1]] + [last]


def stored_metrics(run_dir) -> list:
    """The metrics of a store entry (compact: ``full_metrics`` unfolds them) or of a
    run-cache directory, whichever form the directory holds."""
    return json.loads(metrics_text(metrics_file(run_dir)))


def stored_name(name: str) -> str:
    """The name a run file has in the store (torch files and metrics compressed)."""
    return name + XZ if name in PACKED else name


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
        for name, data in files.items():    # the compact forms, whatever the worker wrote
            if name == "metrics.json":
                data = json_text(compact_metrics(json.loads(data))).encode()
            if name in PACKED:
                data = xz_bytes(data)
            (tmp / stored_name(name)).write_bytes(data)
        (tmp / "run.json").write_text(json.dumps(provenance, indent=1))
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise
    return final


def compact_entry(entry: Path) -> bool:
    """Rewrite an entry published before the compact forms in them (metrics folded,
    torch files and metrics xz-compressed, no exported header); each file replaced
    atomically, checked to decompress to the same bytes first. True if anything changed."""
    changed = False
    metrics = entry / "metrics.json"
    if metrics.exists():                            # folded before it is compressed
        text = metrics.read_text()
        new = json_text(compact_metrics(json.loads(text)))
        if new != text:
            tmp = entry / ".metrics.json.tmp"
            tmp.write_text(new)
            os.replace(tmp, metrics)
    for name in PACKED:
        plain = entry / name
        if plain.exists():
            data = plain.read_bytes()
            packed = xz_bytes(data)
            assert lzma.decompress(packed) == data
            tmp = entry / f".{stored_name(name)}.tmp"
            tmp.write_bytes(packed)
            os.replace(tmp, entry / stored_name(name))
            plain.unlink()
            changed = True
    for product in entry.glob("bitnet_model.h"):     # a build product (pipeline.own_header)
        product.unlink()
        changed = True
    return changed


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
