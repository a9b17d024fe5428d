"""Faults in the run lifecycle, the book's run cache and the engine's boundary (issue 11):
nothing lost, nothing silently wrong, a one-line error (exit 2) where a traceback was.

Each test injects one fault: a run directory of another config, a second training,
a damaged checkpoint.pt / metrics.json / model.pt, a read-only or full disk, --out that
is a file, a damaged run in the book's cache, non-finite or zero images, zero-sized FC
layers in the C engine."""
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import cppyy
import numpy as np
import pytest
import torch

from bitnetlib import pipeline
from bitnetlib import book as bk
from bitnetlib.book import cache
from bitnetlib.book import derived
from bitnetlib.cli import main
from bitnetlib.deploy import engine as G
from bitnetlib.deploy import intmodel as I
from bitnetlib.deploy import model as dmodel
from bitnetlib.training import rundir
from bitnetlib.training.config import load_config
from bitnetlib.training.data import MnistTensors
from bitnetlib.training.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["epochs=2", "augment=false", "widths=[8]", "train_subset=500"]
QUIET = dict(progress=False, log=lambda s: None)
YAML = "widths: [8]\nepochs: 1\ntrain_subset: 500\naugment: false\n"


def cli(capsys, *argv):
    """(exit code, stderr) of ``bitnet ARGV``; the error must be one line."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    if rc == 2:
        assert len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in err
    return rc, err


def config_file(tmp_path, extra="") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(YAML + extra)
    return path


@pytest.fixture(scope="module")
def finished(mnist_subset, tmp_path_factory):
    """A finished 2-epoch run (copied by the tests that damage it)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    train(load_config(None, TINY), run, data=mnist_subset(500, 1000), **QUIET)
    return run


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        if p.is_file():
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


def no_temp_files(run: Path) -> bool:
    return not [p for p in run.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------- data lost

def test_finished_run_of_another_config_is_kept(finished, tmp_path, capsys):
    """The issue's reproduction: checkpoint.pt gone, another config into the same --out."""
    run = copy_run(finished, tmp_path / "run")
    (run / "checkpoint.pt").unlink()
    before = (run / "model.pt").read_bytes()
    rc, err = cli(capsys, "train", config_file(tmp_path), "--out", run, "--no-progress",
                  "--set", "widths=[32,32]", "epochs=2")
    assert rc == 2
    assert str(run) in err and "different config" in err and "widths" in err and "--fresh" in err
    assert (run / "model.pt").read_bytes() == before


def test_fresh_replaces_a_run_of_another_config(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    rc, _ = cli(capsys, "train", config_file(tmp_path), "--out", run, "--no-progress",
                "--fresh")
    assert rc == 0
    assert rundir.read_torch_file(run / "model.pt", "model")["config"]["epochs"] == 1


def hold_lock(run: Path) -> subprocess.Popen:
    """A process that holds RUN_DIR's lock until its stdin closes."""
    code = ("import sys; from pathlib import Path; from bitnetlib.training.rundir import run_lock\n"
            f"with run_lock(Path({str(run)!r})):\n"
            "    print('locked', flush=True); sys.stdin.read()")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_training_fails_at_once_naming_the_holder(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = hold_lock(run)
    try:
        rc, err = cli(capsys, "train", config_file(tmp_path), "--out", run, "--no-progress")
        assert rc == 2 and f"pid {holder.pid}" in err and "in use" in err
        assert not (run / "config.yaml").exists()
    finally:
        holder.communicate("")
    holder = hold_lock(run)
    holder.kill()                                   # kill -9: the kernel drops the lock
    holder.wait()
    with rundir.run_lock(run):
        pass


def test_two_trainings_at_once_leave_one_run(tmp_path):
    """Two CLI trainings of different configs into one --out: one succeeds, the other
    exits 2 (in use, or a run of another config), the files are the winner's."""
    cfg = config_file(tmp_path)
    cmds = [[sys.executable, "-m", "bitnetlib.cli", "train", str(cfg), "--out",
             str(tmp_path / "run"), "--no-progress", "--set", f"widths=[{w}]"] for w in (8, 9)]
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in cmds]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    winner = [8, 9][[rc for rc, _ in results].index(0)]
    saved = rundir.read_torch_file(tmp_path / "run" / "model.pt", "model")
    assert saved["config"]["widths"] == [winner]


def test_stale_temp_files_of_a_killed_run_are_removed(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    stale, other = run / "checkpoint.pt.999-0badc0de.tmp", run / "notes.tmp"
    stale.write_bytes(b"half a checkpoint")
    other.write_text("not a run file")
    train(load_config(None, TINY), run, **QUIET)
    assert not stale.exists() and other.exists()


def test_atomic_writes_use_unique_temp_names(tmp_path):
    names = []
    for _ in range(2):
        rundir.atomic_write(tmp_path / "x.json", lambda p: (names.append(p.name),
                                                            p.write_text("{}")))
    assert len(set(names)) == 2 and "x.json.tmp" not in names
    assert no_temp_files(tmp_path)


# ---------------------------------------------------------------- silently wrong

def test_finished_run_rerun_is_a_no_op(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    lines = []
    _, metrics = train(load_config(None, TINY), run, progress=False, log=lines.append)
    assert any("already finished" in l for l in lines), lines
    assert not any("resuming" in l for l in lines)
    assert len(metrics) == 2
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name in before} == before


def test_corrupt_metrics_are_rewritten_from_the_checkpoint(finished, tmp_path):
    run = copy_run(finished, tmp_path / "run")
    (run / "metrics.json").write_text("{garbage")
    lines = []
    _, metrics = train(load_config(None, TINY), run, progress=False, log=lines.append)
    assert any("metrics.json was unreadable; rewritten" in l for l in lines), lines
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert json.loads((run / "metrics.json").read_text()) == metrics == ckpt["metrics"]


def test_corrupt_metrics_without_checkpoint_is_an_error(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path / "run")
    (run / "metrics.json").write_text("[{\"epoch\": 7}]")
    (run / "checkpoint.pt").unlink()
    rc, err = cli(capsys, "train", config_file(tmp_path), "--out", run, "--set", "epochs=2")
    assert rc == 2 and "metrics.json" in err and "--fresh" in err


@pytest.mark.parametrize("damage", ["truncate", "epoch"])
def test_damaged_checkpoint_is_one_line_error(finished, tmp_path, capsys, damage):
    run = copy_run(finished, tmp_path / "run")
    path = run / "checkpoint.pt"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:300])
    else:
        ckpt = torch.load(path, weights_only=False)
        torch.save({**ckpt, "epoch": 5}, path)
    rc, err = cli(capsys, "train", config_file(tmp_path), "--out", run, "--set", "epochs=2")
    assert rc == 2 and "checkpoint.pt" in err and "--fresh" in err and len(err) < 300


@pytest.mark.parametrize("command", ["stats", "export", "verify", "mcu"])
def test_truncated_model_file(finished, tmp_path, capsys, command):
    run = copy_run(finished, tmp_path / "run")
    (run / "model.pt").write_bytes((run / "model.pt").read_bytes()[:500])
    rc, err = cli(capsys, command, run)
    assert rc == 2 and "model.pt" in err and "truncated or corrupt" in err and len(err) < 300


# ---------------------------------------------------------------- tracebacks -> one line

def test_out_that_is_a_file_or_below_one(tmp_path, capsys):
    afile = tmp_path / "f"
    afile.write_text("x")
    for out, why in ((afile, "is a file"), (afile / "sub", f"{afile} is a file")):
        rc, err = cli(capsys, "train", config_file(tmp_path), "--out", out)
        assert rc == 2 and why in err and "--out" in err
    assert afile.read_text() == "x"


def test_read_only_parent_or_run_dir(tmp_path, capsys, monkeypatch):
    """Simulated (root writes anywhere): mkdir and the lock's open are refused."""
    def refuse(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")
    real_open = os.open
    monkeypatch.setattr(Path, "mkdir", refuse)
    rc, err = cli(capsys, "train", config_file(tmp_path), "--out", tmp_path / "ro" / "run")
    assert rc == 2 and "cannot create run directory" in err and "Permission denied" in err
    monkeypatch.undo()
    monkeypatch.setattr(os, "open", lambda p, *a, **k: refuse() if str(p).startswith(
        str(tmp_path / "ro")) else real_open(p, *a, **k))
    (tmp_path / "ro").mkdir()
    rc, err = cli(capsys, "train", config_file(tmp_path), "--out", tmp_path / "ro")
    assert rc == 2 and f"cannot write in {tmp_path / 'ro'}" in err
    assert list((tmp_path / "ro").iterdir()) == []


def read_only_prefix(path: Path) -> list:
    """A command prefix under which ``path`` is read-only: chmod for a user, a read-only
    bind mount in a private mount namespace for root (who ignores permissions)."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        return []
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip("root without unshare -m: cannot make a read-only directory")
    return ["unshare", "-m", "sh", "-c", f"mount --bind {path} {path} && "
            f"mount -o remount,ro,bind {path} && exec \"$0\" \"$@\""]


RO_SCRIPT = """import sys
from bitnetlib.cli import main
cfg, run, new = sys.argv[1:]
for argv in (["train", cfg, "--out", run, "--set", "widths=[9]"], ["train", cfg, "--out", new],
             ["export", run]):
    print("rc", main(argv), flush=True)
"""


def test_really_read_only_disk(finished, tmp_path):
    """A read-only run directory (another config, export) and a read-only parent."""
    ro = tmp_path / "ro"
    run, new = copy_run(finished, ro / "run"), ro / "new"
    cmd = read_only_prefix(ro) + [sys.executable, "-c", RO_SCRIPT, str(config_file(tmp_path)),
                                  str(run), str(new)]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    errors = [l for l in res.stderr.splitlines() if l.startswith("error")]
    assert [l for l in res.stdout.splitlines() if l.startswith("rc")] == ["rc 2"] * 3
    assert "Traceback" not in res.stderr and len(errors) == 3, res.stderr
    assert f"cannot write in {run}" in errors[0] and f"{new}" in errors[1]
    assert "bitnet_model.h" in errors[2] and not new.exists()


def test_disk_full_in_torch_save(tmp_path, capsys, monkeypatch):
    """torch.save onto a full disk ('enforce fail at inline_container.cc'): a one-line
    error naming the file, no temporary file left; the next run starts cleanly."""
    real_save = torch.save
    full = "/dev/full" if os.path.exists("/dev/full") else None

    def save(obj, path, *a, **k):
        if full is None:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, full, *a, **k)
    monkeypatch.setattr(torch, "save", save)
    run = tmp_path / "run"
    rc, err = cli(capsys, "train", config_file(tmp_path), "--out", run, "--no-progress")
    assert rc == 2 and f"{run / 'checkpoint.pt'}" in err and "disk full" in err
    assert no_temp_files(run) and not (run / "checkpoint.pt").exists()
    monkeypatch.undo()
    assert cli(capsys, "train", config_file(tmp_path), "--out", run, "--no-progress")[0] == 0


def test_disk_full_in_a_text_write(tmp_path, capsys, monkeypatch):
    def write_text(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    cfg, run = config_file(tmp_path), tmp_path / "run"
    monkeypatch.setattr(Path, "write_text", write_text)
    rc, err = cli(capsys, "train", cfg, "--out", run, "--no-progress")
    assert rc == 2 and "config.yaml: disk full" in err
    assert no_temp_files(run)
    with pytest.raises(rundir.RunDirError, match="disk full"):
        derived.cached_result(tmp_path / "r.json", "k", "1", lambda: {"a": 1}, "s")
    assert no_temp_files(tmp_path)


# ---------------------------------------------------------------- the book's run cache

@pytest.fixture
def cached(finished, tmp_path, monkeypatch):
    """The finished run as the book cache's entry for its config: (cfg, run_dir)."""
    monkeypatch.setenv("BITNET_CACHE", str(tmp_path))
    monkeypatch.delenv("BITNET_RECOMPUTE", raising=False)
    cfg = load_config(None, TINY)
    return cfg, copy_run(finished, tmp_path / cache.config_key(cfg))


def test_cache_corrupt_model_names_run_and_command(cached):
    cfg, run = cached
    (run / "model.pt").write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(cache.CacheError) as e:
        bk.run_cached(cfg)
    msg = str(e.value)
    assert str(run) in msg and "model.pt" in msg and "BITNET_RECOMPUTE=1 make book-run" in msg
    assert len(msg.splitlines()) == 1


def test_cache_corrupt_metrics(cached):
    """Rebuilt from checkpoint.pt where there is one, else a CacheError."""
    cfg, run = cached
    (run / "metrics.json").write_text("[1, 2")
    _, metrics = bk.run_cached(cfg)
    assert metrics == json.loads((run / "metrics.json").read_text()) and len(metrics) == 2
    (run / "metrics.json").write_text("[1, 2")
    (run / "checkpoint.pt").unlink()
    with pytest.raises(cache.CacheError, match=f"{run}.*metrics.json.*rm -r"):
        bk.run_cached(cfg)


def test_cache_corrupt_stored_result_is_computed_again(tmp_path):
    path = tmp_path / "verify.json"
    path.write_text('{"engine": "abc", "result": ')
    r = derived.cached_result(path, "engine", "abc", lambda: {"n": 3}, "seconds")
    assert r["n"] == 3 and json.loads(path.read_text())["result"]["n"] == 3


# ---------------------------------------------------------------- the engine's boundary

def test_non_finite_images_are_an_input_error():
    x = np.zeros((3, 1, 16, 16), np.float32)
    x[1, 0, 3, 4], x[2] = np.nan, np.inf
    with pytest.raises(ValueError, match="2 of 3 input images have non-finite"):
        I.input_codes(x)
    assert I.input_codes(np.zeros((0, 1, 16, 16), np.float32)).shape == (0, 256)


def test_cli_reports_non_finite_images(finished, tmp_path, capsys, monkeypatch, mnist):
    nan = MnistTensors(mnist.train28[:10], mnist.train_x[:10], mnist.train_y[:10],
                       torch.full((20, 1, 16, 16), float("nan")), mnist.test_y[:20])
    monkeypatch.setattr(pipeline, "load_mnist", lambda *a, **k: nan)
    run = copy_run(finished, tmp_path / "run")
    rc, err = cli(capsys, "verify", run)
    assert rc == 2 and "20 of 20 input images have non-finite pixels" in err


def test_zero_images(finished, tmp_path):
    _, _, exp = pipeline.export_run(finished)
    header = dmodel.write_header(exp, tmp_path / "m.h")
    pred, logits = G.EngineModel(header, exp.model_id).run(np.zeros((0, 256), np.int8))
    assert pred.shape == (0,) and logits.shape == (0, 10)
    r = I.run(exp, np.zeros((0, 256), np.int64))
    assert r.pred.shape == (0,) and r.logits.shape == (0, 10)


def test_fc_kernels_refuse_zero_outputs_or_inputs():
    g = G.lib()
    shape = int(g.BN_ERR_SHAPE)
    w, a, acc = np.zeros(64, np.uint32), np.ones(64, np.int8), np.zeros(8, np.int32)
    for name, t in G.TYPE_IDS.items():
        wpr = int(g.bn_row_words(t, 8))
        assert int(g.bn_fc(t, w, wpr, a, 8, 0, acc)) == shape, name
        assert int(g.bn_fc(t, w, 0, a, 0, 8, acc)) == shape, name
        assert int(getattr(g, f"bn_fc_{name.lower()}")(w, wpr, a, 8, 0, acc)) == shape, name
        assert int(g.bn_fc(t, w, wpr, a, 8, 1, acc)) == int(g.BN_OK), name
    for t in (G.TYPE_IDS["4bitsym"], G.TYPE_IDS["Binary"]):
        assert int(g.bn_fc_cols(t, w, 0, a, 8, 0, cppyy.nullptr, acc)) == shape
        assert int(g.bn_fc_cols(t, w, 1, a, 0, 8, cppyy.nullptr, acc)) == shape

