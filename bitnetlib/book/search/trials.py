"""A trial's run and what it measures: trained through the book's run cache and
results store, so a trial whose configuration already has a finished run costs nothing
but its C-engine check, and every trained run lands in the store under its config key.

The objective is (``acc_c``, packed bytes): the C engine's accuracy on all 10,000 test
images (``pipeline.verify``, the exported header run by the host build of the engine,
which is bit-exact with the CH32V003 firmware), stored as the run's verify.json, and
the exact packed weight bytes (``Space.packed_bytes``). The fake-quant accuracy and the
last epoch's test accuracy are kept as trial attributes beside it.

    measure(cfg)                 the objective of a finished run (store or run cache)
    train_here(cfg, publish)     train in this process (run cache), optionally publish
    trial_files(cfg_values)      on a Dask worker: train and check, return the run's
                                 files (``store.publish_files`` takes them)
"""
import fcntl
import json
import os

from ...training.config import make_config
from ...training.rundir import RunDirError, cache_root, store_root
from .. import store
from ..cache import config_key, finished_dir, publish, run_cached
from ..derived import cached_result, verify_cached
from ..compute import train_files

CHECK_FILES = ("verify.json", "bitnet_model.h")


def measure(cfg) -> dict:
    """acc_c (C engine), acc_fakequant, test_acc (last epoch) of a finished run; the
    C-engine check is computed once and stored in the run directory."""
    run_dir = finished_dir(cfg)
    if run_dir is None:
        raise FileNotFoundError(f"run {config_key(cfg)}: no finished run to measure")
    v = verify_cached(cfg)
    last = store.stored_metrics(run_dir)[-1]
    return dict(acc_c=v["acc_c"], acc_fakequant=v["acc_fakequant"],
                test_acc=last["test_acc"], mismatch_c_int=v["mismatch_c_int"],
                key=config_key(cfg), stored=run_dir.parent == store_root())


def after_other_training(train, run_dir):
    """``train()``; if another process is training the same run (two trials of a shared
    study on the same point), wait until it ends and call ``train()`` again, which then
    finds the finished run."""
    try:
        return train()
    except RunDirError as e:
        if "in use by another training" not in str(e):
            raise
    fd = os.open(run_dir / ".lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)           # blocks while the other one trains
    finally:
        os.close(fd)
    return train()


def train_here(cfg, publish_run: bool = False) -> dict:
    """Train (or find) the run in this process and measure it; with ``publish_run`` the
    run is copied into the results store first (as ``BITNET_PUBLISH=1`` does)."""
    after_other_training(lambda: run_cached(cfg), cache_root() / config_key(cfg))
    found = finished_dir(cfg)
    if publish_run and found.parent != store_root():
        publish(cfg, found)
    return measure(cfg)


def check_run(run_dir) -> dict:
    """``pipeline.verify`` of a run directory, stored there as verify.json (the format
    of ``derived.verify_cached``: keyed by the C engine's source hash)."""
    from ... import pipeline
    from ...deploy import engine
    return cached_result(run_dir / "verify.json", "engine", engine.source_hash(),
                         lambda: pipeline.verify(run_dir), "verify_seconds")


def trial_files(cfg_values: dict, threads: int = 1) -> dict:
    """On a worker: ``compute.train_files`` and the C-engine check of the run, whose
    verify.json and header travel back with the run's files."""
    run_dir = cache_root() / config_key(make_config(cfg_values, "task"))
    result = after_other_training(lambda: train_files(cfg_values, threads), run_dir)
    check_run(run_dir)
    for name in CHECK_FILES:
        result["files"][name] = (run_dir / name).read_bytes()
    return result


def publish_result(cfg, result: dict) -> dict:
    """Publish a worker's files to the store and measure the run from there."""
    store.publish_files(config_key(cfg), result["files"], result["provenance"])
    return measure(cfg)
