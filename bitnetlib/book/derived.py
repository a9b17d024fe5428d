"""Results derived from a stored run, cached beside it and keyed by the hash of the code
that computes them: the C engine's check (verify.json) and the emulated CH32V003
(mcu_<kernel>_<n>.json). A result whose key no longer matches the sources is computed
again on first use.

    verify_cached(cfg)      C engine vs integer model vs fake-quant, 10,000 images
    mcu_cached(cfg, ...)    the firmware in the emulator: every image checked, cycles
    emulated(cfg, ...)      mcu_cached, or {'why': reason} where the firmware cannot run
    checkpoint_model(cfg)   the last epoch's weights (for runs whose model.pt is an average)
"""
import hashlib
import json
import tempfile
import time
from pathlib import Path

from ..training.data import REPO_ROOT
from ..training.models import build_model
from ..training.rundir import (cache_root, read_torch_file, resolve_device, save_json,
                                store_root)
from . import store
from .cache import damaged_run_is_cache_error, recompute_requested, resolve_config, run_dir_of


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


def own_header(run_dir, exp) -> Path:
    """The run's exported header, written when it is missing or was exported by an older
    export rule: RUN_DIR/bitnet_model.h, or for an entry of the results store (which
    keeps no build products) the one in the run cache's directory of the same key."""
    from ..deploy.model import read_header_id, write_header
    run_dir = Path(run_dir)
    home = cache_root() / run_dir.name if run_dir.parent == store_root() else run_dir
    header = home / "bitnet_model.h"
    if not header.exists() or read_header_id(header) != exp.model_id:
        home.mkdir(parents=True, exist_ok=True)
        write_header(exp, header, str(run_dir))
    return header


def verify_cached(cfg, recompute=None) -> dict:
    """``bitnetlib.pipeline.verify`` of a cached run (all 10,000 test images) on its own
    header, stored in the run directory as verify.json keyed by the C engine's source
    hash."""
    from .. import pipeline
    from ..deploy import engine
    run_dir = run_dir_of(cfg)

    def compute():
        return pipeline.verify(run_dir, own_header(run_dir, pipeline.export_run(run_dir)[2]))
    return cached_result(run_dir / "verify.json", "engine", engine.source_hash(),
                         compute, "verify_seconds", recompute)


NOT_FIRMWARE = ("wasm.py", "huffman.py", "huffbench.py", "codestats.py", "bn_huffman.c",
                "bn_huffman.h", "huffbench.c", "rescalebench.py", "rescalebench.c",
                "benchbuild.py", "bench_runtime.h")


def firmware_source_hash() -> str:
    """Hash of everything that decides an emulated firmware run: the C engine, the
    firmware sources and the Python harness (export, packing, build, emulator, cycle
    model, the run-directory steps). Files that decide no firmware run are left out
    (``NOT_FIRMWARE``: the wasm build, the browser's copy of the engine; the weights'
    Huffman coder, its decoder and its bench image, chapter 27; the rescale bench, chapter 9;
    the benches' shared runtime and build)."""
    h = hashlib.sha256()
    paths = sorted(p for d in ("c_engine", "firmware") for p in (REPO_ROOT / d).iterdir()
                   if p.is_file() and p.suffix in ("", ".c", ".h", ".S", ".ld")
                   and p.name not in NOT_FIRMWARE)
    lib = REPO_ROOT / "bitnetlib"
    paths += sorted(p for p in (lib / "deploy").glob("*.py") if p.name not in NOT_FIRMWARE)
    paths += [lib / "training" / "export.py", lib / "pipeline.py", lib / "wtypes.py"]
    for p in paths:
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def mcu_cached(cfg, kernel: str = "fast", images: int = 10, recompute=None, timed=None) -> dict:
    """``bitnetlib.pipeline.mcu_run`` of a cached run in the emulated CH32V003 (every image
    checked, cycles counted on ``timed`` of them, default all), stored in the run
    directory as mcu_<kernel>_<images>[_t<timed>].json keyed by ``firmware_source_hash``.
    The firmware is built in a temporary directory (build products stay out of the store)."""
    from .. import pipeline
    run_dir, suffix = run_dir_of(cfg), "" if timed is None else f"_t{timed}"

    def compute():
        with tempfile.TemporaryDirectory(prefix="bitnet-fw-") as tmp:
            r = pipeline.mcu_run(run_dir, kernel=kernel, images=images, timed=timed,
                                 build_dir=tmp, log=lambda s: None)
        r.pop("run_dir", None)     # this machine's path: the file sits in the run's directory
        return r
    return cached_result(run_dir / f"mcu_{kernel}_{images}{suffix}.json", "firmware",
                         firmware_source_hash(), compute, "mcu_seconds", recompute)


def checkpoint_model(cfg):
    """The trained weights of a finished run's last epoch (the run cache's checkpoint.pt,
    the store's last_model.pt.xz): for runs whose model.pt holds something else, such as
    the weight average (swa)."""
    cfg = resolve_config(cfg)
    device = resolve_device(cfg.device)
    run_dir = run_dir_of(cfg)
    path = run_dir / (store.stored_name(store.LAST_ITERATE) if run_dir.parent == store_root()
                      else "checkpoint.pt")
    with damaged_run_is_cache_error(run_dir):
        ckpt = read_torch_file(path, "checkpoint", device)
    model = build_model(cfg).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def emulated(cfg, kernel: str = "fast", images: int = 10, timed=None) -> dict:
    """``mcu_cached``'s result, or {'why': the first line of the reason} where there is no
    number: no RISC-V toolchain, or a model the firmware cannot run (flash or SRAM
    overflow, an unsupported layer)."""
    from ..deploy import firmware
    from ..pipeline import DEPLOY_ERRORS
    if not firmware.have_toolchain():
        return dict(why="no RISC-V toolchain (`make toolchain`)")
    try:
        return mcu_cached(cfg, kernel=kernel, images=images, timed=timed)
    except DEPLOY_ERRORS as e:
        lines = str(e).splitlines()
        linker = [l for l in lines if l.startswith("error:")]     # e.g. flash overflow
        return dict(why=(linker or [f"{type(e).__name__}: {(lines or [''])[0]}"])[0][:160])
