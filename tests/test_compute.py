"""Runs computed on Dask and published to the results store: on a LocalCluster of two
workers, and on a cluster of `dask scheduler` + two `dask worker` processes that the
test starts and stops on 127.0.0.1."""
import json
import os
import subprocess
import sys
import time

import pytest

from bitnetlib import book as bk
from bitnetlib.book import compute, store

from conftest import TINY_RUN as TINY


@pytest.fixture()
def store_dir(run_dirs):
    return run_dirs / "results" / "runs"


def check_published(cfgs, store_dir):
    for cfg in cfgs:
        entry = store_dir / bk.config_key(cfg)
        assert bk.run_dir_of(cfg) == entry
        metrics = store.stored_metrics(entry)
        assert len(metrics) == 1 and metrics[0]["test_acc"] > 10
        assert json.loads((entry / "run.json").read_text())["wall_seconds"] >= 0


def test_local_cluster_computes_what_is_missing(store_dir):
    cfgs = [bk.resolve_config({**TINY, "seed": s}) for s in (0, 1)]
    bk.run_cached(cfgs[0])                        # already in the run cache: not sent
    status = compute.compute(cfgs + cfgs[1:], workers=2, progress=False)
    assert status == {bk.config_key(cfgs[1]): "done"}
    check_published(cfgs[1:], store_dir)
    assert compute.missing(cfgs) == []


def test_a_local_clusters_runs_share_the_cores_among_its_workers():
    """One worker on a LocalCluster trains with every core; two split them (a run sent
    to a scheduler elsewhere keeps one thread: its machine's cores are not known here)."""
    cores = os.cpu_count() or 1
    for workers in (1, 2):
        client = compute.open_client(None, workers)
        try:
            assert compute.local_threads(client) == max(1, cores // workers)
        finally:
            compute._close(client)


def start(*cmd, log):
    return subprocess.Popen([sys.executable, "-m", *cmd], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_cli_started_cluster_on_localhost(store_dir, tmp_path):
    sched_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "w")
    procs = [start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                   "--dashboard-address", ":0", "--scheduler-file", str(sched_file), log=log)]
    try:
        for _ in range(300):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs += [start("distributed.cli.dask_worker", address, "--nthreads", "1",
                        "--host", "127.0.0.1", "--dashboard-address", ":0", log=log)
                  for _ in range(2)]
        client = compute.open_client(address)
        client.wait_for_workers(2, timeout=60)
        cfgs = [bk.resolve_config({**TINY, "seed": s}) for s in (2, 3)]
        status = compute.compute(cfgs, client=client, progress=False)
        client.close()
        assert set(status.values()) == {"done"}, status
        check_published(cfgs, store_dir)
    finally:
        for p in procs[::-1]:
            os.killpg(p.pid, 15)
            p.wait(timeout=30)
        log.close()


CHAPTER = '''# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
profile = "smoke"

# %%
from bitnetlib import book as bk
TINY = {tiny!r}
first = bk.run_cached(TINY)
# a run that starts from the first one: its need is only seen once the first exists
second = bk.run_cached({{**TINY, "init_from": bk.run_ref(TINY), "lr": 0.0005}})
print("ran through", profile)
'''


def test_fill_runs_chapters_until_every_run_is_stored(store_dir, tmp_path, monkeypatch):
    from bitnetlib.book import fill
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "99_tiny.py").write_text(CHAPTER.format(tiny=TINY))
    monkeypatch.setattr(fill, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(fill, "NB_DIR", tmp_path / "_build" / "notebooks")
    real = compute.open_client
    monkeypatch.setattr(compute, "open_client", lambda s, w: real(s, 1))
    lines = []
    assert fill.fill(["99_tiny"], log=lines.append) == []
    assert [l for l in lines if l.startswith("pass")] == [
        "pass 1: 1 chapter(s) stopped, 1 run(s) wanted",
        "pass 2: 1 chapter(s) stopped, 1 run(s) wanted",
        "pass 3: 0 chapter(s) stopped, 0 run(s) wanted"]
    assert "ran through full" in (tmp_path / "_build" / "notebooks" / "99_tiny.ipynb").read_text()
    assert len(list(store_dir.iterdir())) == 2


def test_a_task_resumes_a_run_cut_off_in_the_workers_cache(store_dir):
    from bitnetlib.training.config import config_dict
    from bitnetlib.training.rundir import cache_root
    from bitnetlib.training.train import train
    cfg = bk.resolve_config({**TINY, "epochs": 2})
    run_dir = cache_root() / bk.config_key(cfg)
    train(cfg, run_dir, progress=False, log=lambda s: None, stop_after=1)   # killed after 1
    first = json.loads((run_dir / "metrics.json").read_text())
    result = compute.train_files(config_dict(cfg))
    metrics = json.loads(result["files"]["metrics.json"])
    assert len(metrics) == 2 and metrics[0] == first[0]     # epoch 1 kept, not retrained
