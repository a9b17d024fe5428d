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

