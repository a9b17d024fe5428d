"""The Optuna mixed-precision search (bitnetlib/book/search): the space's configs and
exact packed bytes, the objective on tiny runs through the store, one SQLite study
shared by two processes, resuming after an interruption, trials on Dask, the CLI."""
import json
import subprocess
import sys
import textwrap

import pytest

optuna = pytest.importorskip("optuna")

from bitnetlib import book as bk
from bitnetlib.book import search
from bitnetlib.book.mixed import BASE, handpicked_grid, mixed_settings
from bitnetlib.pipeline import export_run
from bitnetlib.training.export import export_model
from bitnetlib.training.models import build_model

from conftest import TINY_RUN

TINY = {k: v for k, v in TINY_RUN.items() if k != "widths"}
POINT = dict(width_1=16, width_2=8, type_1="Ternary", type_2="8bit", type_3="2bitsym")


def tiny_space(budget=0):
    return search.Space(types=["Ternary", "2bitsym", "8bit"], widths=[8, 16], hidden=2,
                        budget=budget, recipe=TINY)


def test_points_map_to_chapter_22s_runs():
    space = search.default_space("full")
    S, common = mixed_settings(dict(profile="full"))
    assert space.hidden == 3 and space.types == S.types and space.budget == 12608
    grid = [bk.config_key(bk.resolve_config({**common, **o}, BASE))
            for o in handpicked_grid(S, "4bitsym", "2bitsym")]
    mixed = dict(width_1=64, width_2=64, width_3=64, type_1="2bitsym", type_2="4bitsym",
                 type_3="4bitsym", type_4="4bitsym")
    uniform = {**mixed, "type_1": "8bit", "type_2": "8bit", "type_3": "8bit", "type_4": "8bit"}
    for point in (mixed, uniform):           # the same run as chapter 22's (same key)
        assert bk.config_key(space.config(point)) in grid
    assert space.config(uniform).quant == "8bit" and not space.config(uniform).quant_per_layer
    assert space.config(mixed).quant_per_layer == ["2bitsym"] + ["4bitsym"] * 3


@pytest.mark.parametrize("params, words", [
    ({**POINT, "width_3": 8}, "unknown ['width_3']"),
    ({k: v for k, v in POINT.items() if k != "type_3"}, "missing ['type_3']"),
    ({**POINT, "width_1": 12}, "width_1=12"),
    ({**POINT, "type_2": "4bit"}, "type_2='4bit'")])
def test_points_outside_the_space_are_named(params, words):
    with pytest.raises(search.SearchError, match=words.replace("[", r"\[").replace("]", r"\]")):
        tiny_space().config(params)


@pytest.mark.parametrize("bad, words", [
    (dict(types=["Foo"]), "types"), (dict(widths=[0]), "widths"),
    (dict(recipe={"widths": [8]}), "chosen by the search"),
    (dict(recipe={"act_bits": 4}), "act_bits=4")])
def test_bad_spaces_are_refused(bad, words):
    with pytest.raises((search.SearchError, bk.cache.ConfigError), match=words):
        search.Space(**{**dict(types=["8bit"], widths=[8], hidden=1, recipe=TINY), **bad})


@pytest.mark.parametrize("layout", ["rows", "cols"])
def test_packed_bytes_equal_the_export(layout):
    from bitnetlib.deploy.model import fc_weight_bytes
    for point in (POINT, {**POINT, "width_1": 8, "type_1": "Binary", "type_3": "4bitsym"}):
        space = search.Space(types=["Binary", "Ternary", "2bitsym", "4bitsym", "8bit"],
                             widths=[8, 16], hidden=2, recipe=TINY)
        exp = export_model(build_model(space.config(point)).eval(), layout=layout)
        widths, types = space.layers(point)
        assert fc_weight_bytes([256, *widths, 10], types, layout) == exp.weight_bytes
        if layout == "rows":
            assert space.packed_bytes(point) == exp.weight_bytes


def test_objective_on_tiny_runs_through_the_store(run_dirs):
    space = tiny_space(budget=1800)
    study = search.open_study("tiny", space)
    assert search.default_storage("tiny").endswith("results/optuna/tiny.db")
    counts = search.run(study, space, 2, progress=False)
    assert counts["completed"] == 2 and counts["trained"] + counts["stored"] == 2
    rows = search.trial_rows(study, space)
    for r in rows:
        assert r["state"] in ("COMPLETE", "PRUNED")
        assert (r["packed_bytes"] > space.budget) == (r["state"] == "PRUNED")
    for r in search.report.done(rows):
        entry = run_dirs / "results" / "runs" / r["key"]       # published to the store
        verify = json.loads((entry / "verify.json").read_text())["result"]
        assert r["acc_c"] == verify["acc_c"] and not (entry / "bitnet_model.h").exists()
        assert (run_dirs / "cache" / r["key"] / "bitnet_model.h").exists()   # a build product
        _, _, exp = export_run(entry)                         # the run's real export
        assert r["packed_bytes"] == exp.weight_bytes
    # the same point again: told from the store, nothing trained
    study.enqueue_trial(study.best_trials[0].params)
    counts = search.run(study, space, 3, progress=False)
    assert counts == dict(trained=0, stored=1, failed=0, completed=3)


SHARED = '''
import os, sys, time
from pathlib import Path
from bitnetlib.book import search
ready = Path(sys.argv[2])
ready.joinpath(sys.argv[1]).touch()
while len(list(ready.iterdir())) < 2:          # both processes start together
    time.sleep(0.05)
space = search.Space(types=["Ternary", "2bitsym", "8bit"], widths=[8, 16], hidden=2,
                     recipe={tiny!r})
study = search.open_study("shared", space, sys.argv[3], seed=int(sys.argv[1]))
print("pid", os.getpid())
search.run(study, space, 3, progress=False)
'''


def test_one_sqlite_study_shared_by_two_processes(run_dirs):
    url = f"sqlite:///{run_dirs / 'shared.db'}"
    (run_dirs / "ready").mkdir()
    script = SHARED.format(tiny=TINY)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i), str(run_dirs / "ready"), url],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in (1, 2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    study, space = search.load_study("shared", url)
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))     # none lost or doubled
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert 3 <= len(trials) <= 4                  # the other's last trial may end late
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, workers             # both processes told trials
    for t in trials:
        assert (run_dirs / "results" / "runs" / t.user_attrs["key"] / "model.pt.xz").exists()


def test_resume_after_an_interruption(run_dirs, monkeypatch):
    space = tiny_space()
    study = search.open_study("resume", space)
    real, calls = search.trials.train_here, []

    def interrupted_second(cfg, publish_run=False):
        calls.append(bk.config_key(cfg))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cfg, publish_run)
    monkeypatch.setattr(search.trials, "train_here", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        search.run(study, space, 3, progress=False)
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "FAIL", "WAITING"]        # the cut-off point queued again
    first = study.trials[0]
    monkeypatch.setattr(search.trials, "train_here", real)
    again = search.open_study("resume", space)              # a second call
    assert search.run(again, space, 3, progress=False)["completed"] == 3
    trials = again.get_trials()
    assert trials[0].values == first.values
    assert trials[2].params == trials[1].params and trials[2].state.name == "COMPLETE"


def test_trials_on_a_local_dask_cluster(run_dirs):
    from distributed import Client, LocalCluster
    space = tiny_space()
    study = search.open_study("dask", space)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        counts = search.run(study, space, 3, client=client, progress=False)
    assert counts["completed"] == 3 and counts["failed"] == 0
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        entry = run_dirs / "results" / "runs" / t.user_attrs["key"]
        assert json.loads((entry / "verify.json").read_text())["result"]["acc_c"] == t.values[0]


def test_cli_runs_and_resumes_a_study(run_dirs, capsys):
    from bitnetlib.cli import main
    args = ["search", "--study", "cli", "--workers", "0", "--no-progress", "--profile", "smoke",
            "--widths", "8", "--types", "2bitsym,8bit", "--hidden", "1",
            "--set", *[f"{k}={json.dumps(v)}" for k, v in TINY.items()]]
    assert main([*args, "--trials", "1"]) == 0
    assert main([*args, "--trials", "2"]) == 0
    assert "study cli: 2 completed trial(s)" in capsys.readouterr().out
    assert main([*args[:-len(TINY) - 1], "--set", "epochs=2", "--trials", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: study 'cli' was created with another space") and "\n" not in err


def test_a_point_in_training_elsewhere_is_waited_for(tmp_path):
    import fcntl
    import os
    import threading
    from bitnetlib.training.rundir import run_lock
    from bitnetlib.book.search.trials import after_other_training
    attempts = []

    def train():                     # the second attempt finds the lock free
        attempts.append(1)
        with run_lock(tmp_path):
            return len(attempts)
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)                      # "another training"
    threading.Timer(0.5, lambda: os.close(fd)).start()
    assert after_other_training(train, tmp_path) == 2


def test_the_chapter_at_full_names_make_search_without_a_study(run_dirs):
    from types import SimpleNamespace
    S = SimpleNamespace(profile="full", study="fc_mixed")
    with pytest.raises(search.MissingStudy, match="make search"):
        search.chapter_study(S, search.default_space("full"))
    assert not (run_dirs / "results" / "optuna" / "fc_mixed.db").exists()   # nothing made
