"""Computing the runs the book needs on Dask, and publishing them to the results store.

    compute(cfgs)                       missing runs trained on a LocalCluster of this
                                        machine (one worker per core, one thread each)
    compute(cfgs, scheduler=ADDRESS)    on an existing cluster (``dask scheduler`` and
                                        ``dask worker ADDRESS`` processes)

Each run is one task, ``train_files``: the worker trains in its own run cache
(``runs/cache/<key>/`` on its machine, checkpointed every epoch) and sends the run's
files back, so no shared filesystem is needed; the client publishes each run to the
store as soon as it arrives. Ctrl-C or a lost worker keeps every finished run, and a
run cut off mid-way resumes from its last epoch when the same machine trains it again;
calling again computes only what is still missing. Workers keep
compiled training steps warm between runs (``torch.compile`` caches per process).
"""
import json
import os
import platform
import time

from tqdm import tqdm

from ..training.config import config_dict, make_config
from . import store
from .cache import cache_root, config_key, describe, finished_dir, last_iterate_bytes


def train_files(cfg_values: dict, threads: int = 1) -> dict:
    """On a worker: train one configuration in the worker's run cache (resuming a run
    cut off earlier). Returns {files: {name: bytes}, provenance: {...}} (what
    ``store.publish_files`` takes)."""
    import torch
    from ..training.train import train
    from .provenance import device_name, git_commit
    cfg = make_config(cfg_values, "task")
    if not cfg.threads:                 # the config leaves it to torch: one per worker
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    run_dir = cache_root() / config_key(cfg)
    train(cfg, run_dir, progress=False, log=lambda s: None)
    files = {n: (run_dir / n).read_bytes() for n in store.RUN_FILES}
    if cfg.swa_start_epoch >= 0:
        files[store.LAST_ITERATE] = last_iterate_bytes(run_dir)
    prov = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit=git_commit(),
                machine=device_name(cfg.device), host=platform.node(),
                torch=torch.__version__, wall_seconds=round(time.perf_counter() - t0, 1),
                epochs=cfg.epochs,
                train_seconds=round(sum(m["seconds"] for m in json.loads(files["metrics.json"])), 1))
    return dict(files=files, provenance=prov)


def missing(cfgs) -> list:
    """The configurations (deduplicated, in order) that have no finished run yet."""
    seen, out = set(), []
    for cfg in cfgs:
        key = config_key(cfg)
        if key not in seen and finished_dir(cfg) is None:
            seen.add(key)
            out.append(cfg)
    return out


def scheduler_from_env():
    """``$BITNET_SCHEDULER`` (a Dask scheduler address), or None for a LocalCluster."""
    return os.environ.get("BITNET_SCHEDULER") or None


def open_client(scheduler=None, workers=None):
    """A Dask client: on ``scheduler`` (an address such as tcp://127.0.0.1:8786), else on
    a LocalCluster with ``workers`` processes (default: one per core) of one thread."""
    from distributed import Client, LocalCluster
    if scheduler:
        return Client(scheduler, timeout="30s")
    n = workers or os.cpu_count() or 1
    return Client(LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None))


def local_threads(client) -> int:
    """Torch threads per run: on a LocalCluster this machine's cores shared among its
    workers, so that ``--workers 1`` trains one run at a time on every core (the
    64-channel CNN: 7.2 s per epoch on two threads, 11.3 s on one,
    benchmarks/epoch_time.py); on a cluster elsewhere 1."""
    cluster = getattr(client, "cluster", None)
    if cluster is None or not hasattr(cluster, "workers"):
        return 1
    return max(1, (os.cpu_count() or 1) // max(1, len(cluster.workers)))


def compute(cfgs, scheduler=None, workers=None, progress=True, client=None) -> dict:
    """Train every configuration of ``cfgs`` that has no finished run, in parallel, and
    publish each to the store as it finishes. Returns {key: 'done' | error text}."""
    from distributed import as_completed
    todo = missing(cfgs)
    if not todo:
        return {}
    own = client is None
    client = client or open_client(scheduler, workers)
    try:
        threads = local_threads(client)
        futures = {client.submit(train_files, config_dict(c), threads,
                                 key=f"train-{config_key(c)}", pure=False, retries=1): c
                   for c in todo}
        status = {}
        bar = tqdm(total=len(futures), desc="runs", disable=not progress, mininterval=1)
        for fut in as_completed(futures):
            status[config_key(futures[fut])] = _collect(fut, futures[fut])
            bar.update()
        bar.close()
        return status
    finally:
        if own:
            _close(client)


def _collect(fut, cfg) -> str:
    """Publish a finished task's run; a failed task is reported, not fatal."""
    try:
        result = fut.result()
    except Exception as e:                 # the task's own error, as the worker raised it
        return f"failed ({describe(cfg)}): {type(e).__name__}: {e}"
    store.publish_files(config_key(cfg), result["files"], result["provenance"])
    return "done"


def _close(client):
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
