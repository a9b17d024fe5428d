"""The run directory's files: atomic writes, the lock, the checkpoint, the finished model.

RUN_DIR layout (every file written to a unique temporary name, then renamed):
    config.yaml      the resolved configuration
    checkpoint.pt    model + optimizer + metrics after the last finished epoch
    metrics.json     per epoch: losses, accuracies, seconds, LR, per-layer clip/entropy
    model.pt         the final model (state dict + config), written when training ends;
                     with swa_start_epoch, the weight average (bitnetlib.training.swa)
    .lock            held (flock) by the training that writes into the directory

The results store keeps the final model xz-compressed, as model.pt.xz (``model_file``
finds either; ``read_torch_file`` reads both).

A directory whose run files belong to another configuration is never touched (only
``--fresh`` replaces them); checkpoint.pt is the source of truth for metrics.json.
Every problem is a one-line ``RunDirError`` that names the file and what to do.
"""
import contextlib
import errno
import fcntl
import io
import json
import lzma
import os
import uuid
from pathlib import Path
from types import SimpleNamespace

import torch
import yaml

from .config import TrainConfig, config_dict, config_diff, make_config
from .data import REPO_ROOT
from .models import build_model
from .packed import XZ, metrics_file, metrics_text, model_file, xz_bytes  # noqa: F401 (store)

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
        if model_file(root / key).exists():
            return root / key
    raise FileNotFoundError(f"{ref}: no finished run with this key in {store_root()} or "
                            f"{cache_root()}; train it first")


RUN_FILES = ("config.yaml", "checkpoint.pt", "metrics.json", "model.pt")


FRESH = "rerun with --fresh to start the run over, or choose another --out"


class RunDirError(RuntimeError):
    """A run directory that cannot be used as it is. ``problem`` says what is wrong,
    the message adds what to do (``advice``)."""

    def __init__(self, problem: str, advice: str = FRESH):
        super().__init__(f"{problem}; {advice}" if advice else problem)
        self.problem, self.advice = problem, advice


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA GPU is available; use device=cpu")
    return torch.device(name)


def one_line(e: BaseException) -> str:
    """Why a read or write failed, in a few words on one line."""
    if isinstance(e, OSError):
        if e.errno == errno.ENOSPC:
            return "disk full"
        return e.strerror or str(e)
    text = str(e)
    if "inline_container" in text or "PytorchStreamWriter" in text:   # torch.save
        return "the write failed (disk full or I/O error)"
    return (text.strip().splitlines() or [type(e).__name__])[0][:200]


def atomic_write(path: Path, write):
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file.
    The temporary name is unique (pid + random), so two writers never share it; on any
    failure it is removed and an OSError or torch writer error is a ``RunDirError``."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):        # a read-only disk refuses this too
            tmp.unlink()
        if isinstance(e, (OSError, RuntimeError)) and not isinstance(e, RunDirError):
            raise RunDirError(f"cannot write {path}: {one_line(e)}", "") from e
        raise


def json_text(obj) -> str:
    """JSON as the run files hold it: a list one compact item per line (metrics.json:
    one line per epoch, a third of the indented size), anything else indented.

    >>> print(json_text([{"epoch": 1, "test_acc": 90.5}, {"epoch": 2, "test_acc": 91.0}]))
    [
    {"epoch":1,"test_acc":90.5},
    {"epoch":2,"test_acc":91.0}
    ]
    """
    if isinstance(obj, list):
        return "[\n" + ",\n".join(json.dumps(x, separators=(",", ":")) for x in obj) + "\n]"
    return json.dumps(obj, indent=1)


def save_json(path: Path, obj):
    atomic_write(path, lambda p: p.write_text(json_text(obj)))


def make_run_dir(run_dir: Path):
    """Create the run directory (and its parents); a one-line error where it cannot be."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a run directory", "choose another --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in run_dir.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file" if blocker else one_line(e)
        raise RunDirError(f"cannot create run directory {run_dir}: {why}",
                          "choose another --out") from e


@contextlib.contextmanager
def run_lock(run_dir: Path):
    """Hold RUN_DIR/.lock (flock, released by the kernel on any exit, also kill -9)
    while training; a second training into the same directory fails at once."""
    path = run_dir / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise RunDirError(f"cannot write in {run_dir}: {one_line(e)}",
                          "choose another --out") from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunDirError(f"{run_dir} is in use by another training (pid {pid})",
                              "wait for it to end or choose another --out") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            raise RunDirError(f"cannot write {path}: {one_line(e)}", "") from e
        yield
    finally:
        os.close(fd)


def remove_stale_temps(run_dir: Path):
    """Temporary run files left by a killed training (only called under the lock, when
    no other training can be writing them)."""
    for name in RUN_FILES:
        for tmp in run_dir.glob(f"{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def remove_run_files(run_dir: Path):
    """--fresh: the run files go (other files in the directory stay)."""
    for name in RUN_FILES:
        try:
            (run_dir / name).unlink(missing_ok=True)
        except OSError as e:
            raise RunDirError(f"cannot remove {run_dir / name}: {one_line(e)}", "") from e


def read_torch_file(path: Path, what: str, device="cpu", advice: str = FRESH) -> dict:
    """A checkpoint.pt / model.pt (or the store's .pt.xz) as written by ``train``: a dict
    with its config."""
    try:
        src = io.BytesIO(lzma.decompress(path.read_bytes())) if path.name.endswith(XZ) else path
        obj = torch.load(src, map_location=device, weights_only=False)
    except Exception as e:
        raise RunDirError(f"{path}: cannot read the {what} (truncated or corrupt: "
                          f"{one_line(e)[:80]})", advice) from e
    if not isinstance(obj, dict) or not isinstance(obj.get("config"), dict) or \
            not isinstance(obj.get("model"), dict):
        raise RunDirError(f"{path}: not a {what} written by bitnet train", advice)
    return obj


def read_config_yaml(path: Path) -> dict:
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RunDirError(f"{path}: unreadable ({one_line(e)[:80]})") from e
    if not isinstance(saved, dict):
        raise RunDirError(f"{path}: not a configuration written by bitnet train")
    return saved


def check_config(run_dir: Path, name: str, saved: dict, now: dict):
    if saved != now:
        raise RunDirError(f"{run_dir} holds a run of a different config ({name}: "
                          f"{config_diff(saved, now)})",
                          "use another --out, or --fresh to replace that run")


def read_metrics(path: Path):
    """metrics.json as a list of per-epoch dicts numbered 1, 2, ...; None if unreadable."""
    try:
        m = json.loads(metrics_text(path))
    except (OSError, ValueError, lzma.LZMAError):
        return None
    ok = isinstance(m, list) and all(isinstance(e, dict) and e.get("epoch") == i + 1
                                     for i, e in enumerate(m))
    return m if ok else None


def check_checkpoint(path: Path, ckpt: dict, cfg: TrainConfig):
    epoch, metrics = ckpt.get("epoch"), ckpt.get("metrics")
    if not (isinstance(epoch, int) and 0 <= epoch < cfg.epochs and isinstance(metrics, list)
            and len(metrics) == epoch + 1 and "optimizer" in ckpt
            and (cfg.swa_start_epoch < 0 or "swa" in ckpt)):
        raise RunDirError(f"{path}: inconsistent checkpoint (epoch {epoch!r} of "
                          f"{cfg.epochs}, {len(metrics or [])} epochs of metrics)")


def metrics_from_checkpoint(run_dir: Path, ckpt: dict, log) -> list:
    """The checkpoint's metrics; metrics.json is rewritten from them where it differs
    (killed between the two writes, or damaged)."""
    path, text = run_dir / "metrics.json", json_text(ckpt["metrics"])
    old = path.read_text(errors="replace") if path.exists() else None
    if old != text:
        why = ("missing" if old is None else
               "unreadable" if read_metrics(path) is None else "out of step")
        save_json(path, ckpt["metrics"])
        log(f"note: {path} was {why}; rewritten from checkpoint.pt")
    return ckpt["metrics"]


def metrics_without_checkpoint(run_dir: Path, have: set, finished: bool, cfg) -> list:
    """metrics.json of a run without checkpoint.pt: the finished run's metrics (which
    must be complete), or [] where training starts again at epoch 1."""
    path = metrics_file(run_dir)
    metrics = read_metrics(path) if "metrics.json" in have else None
    if finished:
        if metrics is None or len(metrics) != cfg.epochs:
            state = "unreadable" if "metrics.json" in have else "missing"
            if metrics is not None:
                state = f"incomplete ({len(metrics)} of {cfg.epochs} epochs)"
            raise RunDirError(f"{path} is {state} and there is no checkpoint.pt to "
                              f"rebuild it from")
        return metrics
    if "metrics.json" in have and "config.yaml" not in have:
        raise RunDirError(f"{run_dir} holds a metrics.json of an unknown run (no "
                          f"config.yaml, checkpoint.pt or model.pt)")
    return []


def inspect_run(run_dir: Path, cfg: TrainConfig, device="cpu", log=print):
    """What RUN_DIR holds for ``cfg``: SimpleNamespace(ckpt, saved (model.pt), metrics,
    start (next epoch), finished). Files of another config, unreadable or inconsistent
    files are a RunDirError; metrics.json is made to agree with checkpoint.pt."""
    have = {n for n in RUN_FILES if (run_dir / n).exists()}
    if model_file(run_dir).exists():
        have.add("model.pt")
    if metrics_file(run_dir).exists():
        have.add("metrics.json")
    now = config_dict(cfg)
    if "config.yaml" in have:
        check_config(run_dir, "config.yaml", read_config_yaml(run_dir / "config.yaml"),
                     yaml.safe_load(yaml.safe_dump(now)))
    ckpt = saved = None
    if "checkpoint.pt" in have:
        ckpt = read_torch_file(run_dir / "checkpoint.pt", "checkpoint", device)
        check_config(run_dir, "checkpoint.pt", ckpt["config"], now)
        check_checkpoint(run_dir / "checkpoint.pt", ckpt, cfg)
    if "model.pt" in have:
        saved = read_torch_file(model_file(run_dir), "model file", device)
        check_config(run_dir, "model.pt", saved["config"], now)
    if ckpt is None:
        metrics = metrics_without_checkpoint(run_dir, have, saved is not None, cfg)
        start = len(metrics)
    else:
        metrics, start = metrics_from_checkpoint(run_dir, ckpt, log), ckpt["epoch"] + 1
        if saved is not None and start != cfg.epochs:
            raise RunDirError(f"{run_dir}: model.pt is a finished run but checkpoint.pt "
                              f"stops at epoch {start} of {cfg.epochs}")
    return SimpleNamespace(ckpt=ckpt, saved=saved, metrics=metrics, start=start,
                           finished=saved is not None)


def load_checkpoint(ckpt: dict, model, opt, swa=None):
    """Restore model, optimizer (and the weight average) from a checked checkpoint."""
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    if swa is not None:
        swa.load_state_dict(ckpt["swa"])


def model_from(saved: dict, path, device="cpu", advice: str = FRESH):
    """(config, model in eval mode) from a model.pt's contents."""
    try:
        cfg = make_config(saved["config"], str(path))
        model = build_model(cfg).to(device)
        model.load_state_dict(saved["model"])
    except Exception as e:
        raise RunDirError(f"{path}: the model does not match its config ({one_line(e)[:80]})",
                          advice) from e
    return cfg, model.eval()


def load_run(run_dir, device="cpu"):
    """(config, model) from a finished run's model.pt (a path or ``run:<key>``)."""
    path = model_file(resolve_run(run_dir))
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (bitnet train)")
    advice = "train the run again (bitnet train ... --fresh)"
    return model_from(read_torch_file(path, "model file", device, advice), path, device, advice)
