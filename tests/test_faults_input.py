"""Bad input (issue 11): every bad config value, command-line argument or raw data file
stops with a one-line error that names the key, argument or file and what is valid;
nothing is silently wrong and the command line never shows a traceback.

The run-directory faults (locks, overwrites, corrupt run files) are in test_faults_runs.py.
"""
import dataclasses
import hashlib
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

import bitnetlib.cli as cli
from bitnetlib.training import data as D
from bitnetlib.training.config import ConfigError, TrainConfig, config_dict, load_config
from bitnetlib.training.rundir import inspect_run

ROOT = Path(__file__).resolve().parents[1]
C = "configs/fc_4bitsym_64x3_aug.yaml"


def config_error(overrides, path=None) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def run_cli(*args, timeout=120):
    """``bitnet ARGS`` in a subprocess from the repository root: (rc, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "bitnetlib.cli", *map(str, args)], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def assert_one_line_error(rc, stderr, *words):
    assert rc == 2 and "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for w in words:
        assert w in stderr, (w, stderr)


# ---------------------------------------------------------------- config values

@pytest.mark.parametrize("overrides,key,valid", [
    (["train_subset=-59000"], "train_subset", "60000"),
    (["train_subset=60001"], "train_subset", "60000"),
    (["quantscale=.nan"], "quantscale", "> 0"),
    (["lr=.nan"], "lr", "> 0"),
    (["lr=.inf"], "lr", "finite"),
    (["scheduler=step", "step_size=0"], "step_size", ">= 1"),
    (["widths=[true, 64]"], "widths", "positive int"),
    (["distill_temperature=0"], "distill_temperature", "> 0"),
    (["distill_temperature=.inf"], "distill_temperature", "finite"),
    (["step_gamma=0"], "step_gamma", "<= 1"),
    (["step_gamma=.nan"], "step_gamma", "<= 1"),
    (["aug_rotation=.nan"], "aug_rotation", "0..180"),
    (["aug_affine_rotation=-10"], "aug_affine_rotation", "0..180"),
    (["aug_translate=2"], "aug_translate", "0..1"),
    (["aug_scale_min=0"], "aug_scale_min", "> 0"),
    (["aug_scale_min=1.2"], "aug_scale_max", "aug_scale_min"),
    (["aug_elastic=.nan"], "aug_elastic", ">= 0"),
    (["aug_elastic_grid=1"], "aug_elastic_grid", ">= 2"),
    (["batch_size=0"], "batch_size", ">= 1"),
    (["threads=-1"], "threads", ">= 0"),
    (["seed=-1"], "seed", "4294967295"),
    (["halve_lr_epoch=-5"], "halve_lr_epoch", "-1"),
    (["octav_freeze_epoch=-2"], "octav_freeze_epoch", "-1"),
    (["quant_switch_epoch=-2"], "quant_switch_epoch", "-1"),
    (["quant_cycle_period=-1"], "quant_cycle_period", ">= 2"),
    (["quant_per_layer=[4bitsym]"], "quant_per_layer", "4 entries"),
    (["quant_per_layer=[[1]]"], "quant_per_layer", "4bitsym"),
    (["quant_cycle=[[1], [2]]", "quant_cycle_period=2", "quant_switch_epoch=2"],
     "quant_cycle", "4bitsym"),
])
def test_bad_value_names_key_and_valid_range(overrides, key, valid):
    msg = config_error(overrides, C)
    assert repr(key) in msg and valid in msg, msg


NUMERIC = {f.name: typing.get_type_hints(TrainConfig)[f.name] for f in dataclasses.fields(TrainConfig)
           if typing.get_type_hints(TrainConfig)[f.name] in (int, float)}


@pytest.mark.parametrize("key", sorted(NUMERIC))
def test_every_numeric_key_has_a_range(key):
    """Far out of range (and, for floats, NaN and +-inf) is rejected for every key."""
    bad = ["-1000000000"] + ([".nan", ".inf", "-.inf"] if NUMERIC[key] is float else [])
    for value in bad:
        assert repr(key) in config_error([f"{key}={value}"])


def test_exponent_without_a_dot_gets_a_hint():
    """YAML 1.1 reads 1e-3 as a string: the error says how to write it."""
    assert "0.001" in config_error(["lr=1e-3"])
    assert "dot" not in config_error(["lr=inf"])


def test_boundary_values_are_valid():
    edge = ["train_subset=60000", "threads=0", "seed=4294967295", "halve_lr_epoch=-1",
            "octav_freeze_epoch=0", "step_gamma=1", "aug_rotation=0", "aug_translate=0",
            "aug_scale_min=1", "aug_scale_max=1", "distill_temperature=0.5"]
    load_config(C, edge)
    assert config_dict(load_config(C, ["train_subset=1"]))["train_subset"] == 1


# ---------------------------------------------------------------- overrides and files

def test_bad_override_yaml_is_blamed_on_the_override():
    msg = config_error(["widths=[32,"], C)
    assert "override" in msg and "widths=[32," in msg and C not in msg


def test_bad_override_key_is_blamed_on_the_override_not_the_file():
    msg = config_error(["qaunt=4bit"], C)
    assert "override" in msg and "qaunt=4bit" in msg and C not in msg and "quant" in msg


def test_unknown_key_in_file_still_names_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("epochs: 2\nqaunt: 4bit\n")
    assert str(p) in config_error([], p)


def test_config_path_that_is_a_directory_or_binary(tmp_path):
    assert str(tmp_path) in config_error([], tmp_path)
    p = tmp_path / "c.yaml"
    p.write_bytes(b"\xff\xfe\x00epochs")
    assert str(p) in config_error([], p)


@pytest.mark.parametrize("override", ["widths=[32,", "widths=[true,64]", "qaunt=4bit",
                                      "scheduler=step step_size=0"])
def test_train_command_line_errors_are_one_line(override, tmp_path):
    rc, _, err = run_cli("train", C, "--out", tmp_path / "run", "--set", *override.split())
    assert_one_line_error(rc, err, override.split()[-1].split("=")[0])
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- command-line arguments

def test_repeated_set_options_add_up(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("bitnetlib.training.train.train",
                        lambda cfg, out, **kw: (seen.setdefault("cfg", cfg), []))
    assert cli.main(["train", C, "--set", "epochs=8", "--set", "threads=1",
                     "--out", str(tmp_path / "run")]) == 0
    assert (seen["cfg"].epochs, seen["cfg"].threads) == (8, 1)


@pytest.mark.parametrize("args,word", [
    (["--images", "-5"], "--images"),
    (["--images", "0"], "--images"),
    (["--images", "x"], "--images"),
    (["--timed", "-1"], "--timed"),
])
def test_mcu_counts_must_be_positive(args, word, monkeypatch, capsys):
    monkeypatch.setattr(cli, "mcu_run", lambda *a, **k: pytest.fail("mcu_run was called"))
    with pytest.raises(SystemExit) as e:
        cli.main(["mcu", "runs/x", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and word in err, err


def test_mcu_timed_zero_means_no_counting(monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "mcu_run", lambda run_dir, **k: seen.update(k) or
                        dict(mismatch_vs_host=0))
    monkeypatch.setattr(cli, "format_result", lambda r: "")
    assert cli.main(["mcu", "runs/x", "--images", "3", "--timed", "0"]) == 0
    assert (seen["images"], seen["timed"]) == (3, 0)


def verify_result(mismatch: int) -> dict:
    return dict(n=10, acc_fakequant=90.0, acc_int=90.0, acc_c=90.0, mismatch_c_int=mismatch,
                mismatch_logits_c_int=mismatch, mismatch_int_fakequant=0,
                mismatch_absmax_fakequant=0)


@pytest.mark.parametrize("mismatch,rc", [(0, 0), (3, 1)])
def test_verify_exit_code(mismatch, rc, monkeypatch):
    monkeypatch.setattr(cli, "verify", lambda run_dir, header=None: verify_result(mismatch))
    assert cli.main(["verify", "runs/x"]) == rc


@pytest.mark.parametrize("command", ["export", "verify"])
def test_header_that_is_a_directory(command, tmp_path, monkeypatch, capsys):
    for name in ("export_run", "verify"):
        monkeypatch.setattr(cli, name, lambda *a, **k: pytest.fail("ran with a bad --header"))
    assert cli.main([command, "runs/x", "--header", str(tmp_path)]) == 2
    assert cli.main([command, "runs/x", "--header", str(tmp_path / "no" / "m.h")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "is a directory" in err[0] and "does not exist" in err[1], err


@pytest.mark.parametrize("args,word", [
    (["nosuch"], "nosuch"),
    (["train"], "config"),
    (["mcu", "runs/x", "--kernel", "turbo"], "turbo"),
])
def test_usage_errors_are_one_line(args, word):
    rc, _, err = run_cli(*args)
    assert_one_line_error(rc, err, word, "--help")


# ---------------------------------------------------------------- raw data files

SRC = D.resolve_data_root() / "MNIST" / "raw"


@pytest.fixture
def raw(tmp_path):
    """A data root whose MNIST/raw links to the real files: replace() swaps one in."""
    r = tmp_path / "MNIST" / "raw"
    r.mkdir(parents=True)
    for f in SRC.iterdir():
        os.symlink(f, r / f.name)
    return r


def replace(raw, name, data: bytes):
    """Write ``data`` as ``name`` and its digest into SHA256SUMS: only the content is bad."""
    old = hashlib.sha256((SRC / name).read_bytes()).hexdigest()
    sums = (raw / "SHA256SUMS").read_text().replace(old, hashlib.sha256(data).hexdigest())
    for n, text in ((name, data), ("SHA256SUMS", sums.encode())):
        (raw / n).unlink()
        (raw / n).write_bytes(text)


def test_labels_are_checked_at_load(raw):
    labels = np.frombuffer((SRC / "t10k-labels-idx1-ubyte").read_bytes()[8:], np.uint8).copy()
    labels[5] = 200
    replace(raw, "t10k-labels-idx1-ubyte", bytes([0, 0, 8, 1]) + (10000).to_bytes(4, "big")
            + labels.tobytes())
    with pytest.raises(D.DataError, match=r"t10k-labels-idx1-ubyte.*200.*0\.\.9"):
        D.load_mnist(raw.parents[1], train_subset=10)


def test_label_and_image_counts_must_match(raw):
    labels = (SRC / "t10k-labels-idx1-ubyte").read_bytes()[8:9008]
    replace(raw, "t10k-labels-idx1-ubyte", bytes([0, 0, 8, 1]) + (9000).to_bytes(4, "big") + labels)
    with pytest.raises(D.DataError) as e:
        D.load_mnist(raw.parents[1], train_subset=10)
    msg = str(e.value)
    assert "t10k-labels-idx1-ubyte" in msg and "t10k-images-idx3-ubyte" in msg
    assert "9000" in msg and "10000" in msg


def test_idx_header_with_wrong_dimensions(raw):
    body = (SRC / "t10k-labels-idx1-ubyte").read_bytes()[4:]
    replace(raw, "t10k-labels-idx1-ubyte", bytes([0, 0, 8, 255]) + body)
    with pytest.raises(D.DataError, match=r"t10k-labels-idx1-ubyte.*255 dimensions.*expected 1"):
        D.load_mnist(raw.parents[1], train_subset=10)


@pytest.mark.parametrize("line", ["garbage", "a b c", "xyz  t10k-labels-idx1-ubyte"])
def test_malformed_checksum_line(raw, line):
    sums = (raw / "SHA256SUMS").read_text() + line + "\n"
    (raw / "SHA256SUMS").unlink()
    (raw / "SHA256SUMS").write_text(sums)
    with pytest.raises(D.DataError, match=r"SHA256SUMS.*line 5.*64 hex digits"):
        D.load_mnist(raw.parents[1], train_subset=10)


def test_corrupt_data_is_one_line_from_the_command_line(raw, tmp_path):
    (raw / "SHA256SUMS").unlink()
    (raw / "SHA256SUMS").write_text("garbage\n")
    rc, _, err = run_cli("train", C, "--out", tmp_path / "run", "--set", "epochs=1",
                         f"data_root={raw.parents[1]}")
    assert_one_line_error(rc, err, "SHA256SUMS line 1")


def test_binary_mode_checksum_line_is_checked(raw):
    """``sha256sum -b`` writes ``DIGEST *NAME``: the file is still checked."""
    sums = (raw / "SHA256SUMS").read_text().replace("  t10k-labels", " *t10k-labels")
    (raw / "SHA256SUMS").unlink()
    (raw / "SHA256SUMS").write_text(sums)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte").write_bytes((SRC / "t10k-labels-idx1-ubyte").read_bytes()[:-1] + b"\x09")
    with pytest.raises(D.DataError, match="t10k-labels-idx1-ubyte.*SHA256"):
        D.load_mnist(raw.parents[1], train_subset=10)


# ---------------------------------------------------------------- messages

def test_changed_config_names_the_keys_and_the_way_out(tmp_path):
    old = load_config(None, ["widths=[16]"])
    torch.save(dict(config=config_dict(old), model={}), tmp_path / "checkpoint.pt")
    new = load_config(None, ["widths=[16]", "threads=2", "epochs=5"])
    with pytest.raises(RuntimeError) as e:
        inspect_run(tmp_path, new)
    msg = str(e.value)
    assert "threads 0 -> 2" in msg and "epochs 60 -> 5" in msg and "--fresh" in msg
    assert "--out" in msg and "\n" not in msg


def test_ctrl_c_is_one_line_and_says_how_to_go_on(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_stats", interrupted)
    assert cli.main(["stats", "somewhere"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "again" in err and "Traceback" not in err


@pytest.mark.parametrize("images, timed", [(0, None), (-5, None), (10001, None), (3, -1)])
def test_mcu_run_refuses_image_counts_outside_the_test_set(images, timed):
    from bitnetlib.pipeline import mcu_run
    from bitnetlib.deploy.firmware import McuError
    with pytest.raises(McuError, match="expected 1..10000"):
        mcu_run("no-such-run", images=images, timed=timed)
