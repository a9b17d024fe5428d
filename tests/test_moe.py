"""Mixture of experts (model: fc_moe): config checks, a short run that learns, the C
engine bit for bit with the integer model (expert choice included), the firmware."""
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from bitnetlib.deploy import firmware, intmodel
from bitnetlib.deploy.moe import firmware_layout, run_moe, write_moe_header
from bitnetlib.deploy.moe_engine import EngineMoE
from bitnetlib.deploy.packing import ExportError
from bitnetlib.training.config import ConfigError, make_config
from bitnetlib.training.export import check_deployable
from bitnetlib.training.export_moe import export_moe
from bitnetlib.training.moe import expert_load
from bitnetlib.training.train import train

SMALL = dict(model="fc_moe", widths=[16], moe_experts=3, moe_gate_widths=[8], epochs=3,
             augment=False, lr=0.003, device="cpu", threads=1)


@pytest.mark.parametrize("values, words", [
    (dict(moe_experts=3), ["moe_experts", "needs model: fc_moe"]),
    (dict(moe_trunk=32), ["moe_trunk", "fc_moe"]),
    (dict(model="fc_moe", moe_experts=1), ["moe_experts", "2..64"]),
    (dict(model="fc_moe", moe_gate_widths=[8, 0]), ["moe_gate_widths", "[8, 0]"]),
    (dict(model="fc_moe", moe_gate_widths=[True]), ["moe_gate_widths"]),
    (dict(model="fc_moe", moe_balance=-0.1), ["moe_balance", ">= 0"]),
    (dict(model="fc_moe", quant_per_layer=["4bitsym"] * 4), ["fc_moe", "quant_per_layer"]),
    (dict(model="fc_moe", prune="l1", prune_density=0.5), ["fc_moe", "prune"]),
])
def test_config_errors_name_the_key(values, words):
    with pytest.raises(ConfigError) as e:
        make_config(values)
    assert all(w in str(e.value) for w in words), str(e.value)
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module", params=[0, 24], ids=["no-trunk", "trunk24"])
def trained(request, mnist_subset, tmp_path_factory):
    """A small fc_moe (3 experts 256-16-10, gate 256-8-3; or a 24-wide trunk) trained
    for 3 epochs on 3,000 images."""
    torch.set_num_threads(1)
    cfg = make_config({**SMALL, "moe_trunk": request.param})
    data = mnist_subset(3000, 2000)
    model, metrics = train(cfg, tmp_path_factory.mktemp("moe"), data=data, progress=False,
                           log=lambda s: None)
    return cfg, model.eval(), metrics, data


def test_short_run_learns_and_uses_several_experts(trained):
    cfg, model, metrics, data = trained
    assert metrics[-1]["test_acc"] > 60.0                  # chance: 10%
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    load = expert_load(model, data.test_x)
    assert load.sum() == pytest.approx(1.0) and (load > 0.02).sum() >= 2


@pytest.mark.parametrize("layout", ["rows", "cols", "firmware"])
def test_c_engine_matches_integer_model_bit_for_bit(trained, layout, tmp_path):
    cfg, model, _, data = trained
    exp = firmware_layout(export_moe(model)) if layout == "firmware" else export_moe(model, layout)
    x = intmodel.input_codes(data.test_x[:500])
    ref = run_moe(exp, x)
    engine = EngineMoE(write_moe_header(exp, tmp_path / "moe.h"), exp.moe_id)
    pred, logits, expert = engine.run(x.astype(np.int8))
    assert np.array_equal(expert, ref.expert) and np.array_equal(logits, ref.logits)
    assert np.array_equal(pred, ref.pred)
    # the float model's routing: the same expert on nearly every image
    _, _, idx = model.route(data.test_x[:500])
    assert (idx.numpy() == ref.expert).mean() > 0.95
    # the integer model's predictions are the fake-quantized model's, nearly always
    with torch.no_grad():
        fq = model(data.test_x[:500]).argmax(1).numpy()
    assert (fq == ref.pred).mean() > 0.95
    assert exp.weight_bytes == sum(p.weight_bytes for p in exp.parts)


def test_whole_run_export_is_refused_with_a_pointer(trained):
    with pytest.raises(ExportError, match="export_moe"):
        check_deployable(trained[0], "run")


@pytest.mark.skipif(not firmware.have_toolchain(), reason="RISC-V toolchain missing")
def test_firmware_runs_the_moe_like_the_host(trained):
    from bitnetlib.deploy.moe_firmware import mcu_moe
    _, model, _, data = trained
    exp = firmware_layout(export_moe(model))
    assert {l.layout for p in exp.parts for l in p.layers} == {"rows", "cols"}
    x = intmodel.input_codes(data.test_x[:6]).astype(np.int8)
    with tempfile.TemporaryDirectory() as tmp:
        r = mcu_moe(exp, write_moe_header(exp, Path(tmp) / "moe.h"), x, "fast", tmp)
    assert r["mismatch_vs_host"] == 0
    parts = r["part_cycles_mean"]
    assert list(parts)[-2:] == ["gate", "expert"] and all(v > 0 for v in parts.values())
    assert sum(parts.values()) == pytest.approx(r["cycles_mean"])


def test_design_bytes_are_the_exported_bytes(trained):
    from bitnetlib.book.moe import expert_width, moe_bytes
    cfg, model, _, _ = trained
    assert export_moe(model).weight_bytes == moe_bytes(
        cfg.moe_experts, cfg.moe_gate_widths, cfg.widths, cfg.moe_trunk, cfg.quant)
    w = expert_width(12608, 4, [], 32, "4bitsym")
    assert w % 8 == 0 and moe_bytes(4, [], [w], 32, "4bitsym") <= 12608 < \
        moe_bytes(4, [], [w + 8], 32, "4bitsym")


def test_engine_refuses_bad_calls_with_a_status(trained, tmp_path):
    import cppyy
    from bitnetlib.deploy.engine import EngineError, lib
    exp = export_moe(trained[1])
    header = write_moe_header(exp, tmp_path / "moe.h")
    with pytest.raises(EngineError, match="re-export"):
        EngineMoE(header, exp.moe_id ^ 1)
    engine = EngineMoE(header, exp.moe_id)
    with pytest.raises(ValueError, match="expected"):
        engine.run(np.zeros((1, 5), np.int8))
    engine.scratch = np.zeros(2, np.int32)
    with pytest.raises(EngineError, match="BN_ERR_SCRATCH"):
        engine.run(np.zeros((1, engine.input_len), np.int8))
    assert int(lib().bn_moe_scratch_bytes(cppyy.nullptr)) == 0


@pytest.fixture(scope="module")
def moe_run(mnist_subset, tmp_path_factory):
    """An fc_moe run directory: 1 epoch on 600 images (what `bitnet train` leaves)."""
    torch.set_num_threads(1)
    cfg = make_config({**SMALL, "epochs": 1})
    run = tmp_path_factory.mktemp("moe_run")
    model, _ = train(cfg, run, data=mnist_subset(600, 500), progress=False, log=lambda s: None)
    return run, model.eval(), mnist_subset(600, 500)


@pytest.mark.parametrize("layout", ["rows", "cols"])
def test_cli_export_writes_a_header_the_moe_engine_runs(moe_run, layout, tmp_path, capsys):
    from bitnetlib.cli import main
    run, model, data = moe_run
    header = tmp_path / f"moe_{layout}.h"
    assert main(["export", str(run), "--header", str(header), "--layout", layout]) == 0
    out = capsys.readouterr().out
    assert "Mixture of 3 experts" in out and "expert 2:" in out and f"wrote {header}" in out
    exp = export_moe(model, layout)
    x = intmodel.input_codes(data.test_x[:200])
    ref = run_moe(exp, x)
    pred, logits, expert = EngineMoE(header, exp.moe_id).run(x.astype(np.int8))
    assert np.array_equal(expert, ref.expert) and np.array_equal(logits, ref.logits)
    assert np.array_equal(pred, ref.pred)


def test_cli_verify_checks_the_moe_and_mcu_names_its_function(moe_run, capsys):
    import json

    from bitnetlib.cli import main
    run = moe_run[0]
    (run / "bitnet_model.h").write_text("/* stale */\n")      # rewritten: not a moe header
    assert main(["verify", str(run), "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["mismatch_c_int"] == 0 and len(r["load_int"]) == 3
    assert sum(r["load_int"]) == pytest.approx(1.0) and r["acc_int"] > 20.0   # chance: 10%
    assert "bitnet-moe-symbol" in (run / "bitnet_model.h").read_text()
    assert main(["mcu", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "fc_moe" in err and "mcu_moe" in err and "\n" not in err
