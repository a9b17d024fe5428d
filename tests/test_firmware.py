"""CH32V003 firmware in the RV32EC emulator (bitnetlib/deploy/emulator.py, bitnetlib/pipeline.py): builds, bit-exact vs the
host engine, RV32EC only, clear size errors."""
import json

import numpy as np
import pytest
import torch

from bitnetlib.deploy import model as dmodel

from bitnetlib.deploy import emulator

from bitnetlib.deploy import firmware

from bitnetlib import pipeline

from bitnetlib.deploy import rv32ec
from bitnetlib.cli import main
from bitnetlib.training.config import load_config
from bitnetlib.training.train import train

pytestmark = pytest.mark.skipif(
    not firmware.have_toolchain(),
    reason=f"{firmware.cross_prefix()}gcc missing: `make toolchain` installs the RISC-V toolchain")


@pytest.fixture(scope="module")
def run(mnist_subset, tmp_path_factory):
    """A small trained FC 4bitsym 256-32-32-10 (1 epoch on 2,000 images)."""
    torch.set_num_threads(1)
    data = mnist_subset(2000)
    out = tmp_path_factory.mktemp("fw_run")
    cfg = load_config(None, ["quant=4bitsym", "widths=[32,32]", "epochs=1", "augment=false",
                             "lr=0.003", "threads=1"])
    train(cfg, out, data=data, progress=False, log=lambda s: None)
    return out


@pytest.fixture(scope="module")
def cnn_run(mnist_subset, tmp_path_factory):
    """A small trained CNN: conv 1->8, two depthwise + pool stages, FC 32-32-10."""
    torch.set_num_threads(1)
    data = mnist_subset(2000)
    out = tmp_path_factory.mktemp("fw_cnn")
    cfg = load_config(None, ["model=cnn", "cnn_channels=8", "widths=[32]", "epochs=1",
                             "quant_per_layer=[2bitsym,4bitsym]", "augment=false",
                             "lr=0.003", "threads=1"])
    train(cfg, out, data=data, progress=False, log=lambda s: None)
    return out


@pytest.mark.parametrize("kernel", ["baseline", "fast"])
def test_firmware_matches_host_without_hooks(run, mnist, kernel, tmp_path):
    r = pipeline.mcu_run(run, kernel=kernel, images=8, hooks=False, build_dir=tmp_path, data=mnist,
                    log=lambda s: None)
    assert r["mismatch_vs_host"] == 0 and r["mismatch_layers"] == 0
    assert 0 < r["flash_bytes"] <= firmware.FLASH_LIMIT and 0 < r["ram_bytes"] <= firmware.RAM_LIMIT
    assert r["fits_ch32v003"] and r["cycles_mean"] is None


def test_hooked_run_is_rv32ec_and_counts(run, mnist, capsys):
    rc = main(["mcu", str(run), "--kernel", "fast", "--images", "3", "--timed", "2", "--json"])
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0
    for key in ("flash_bytes", "ram_bytes", "cycles_mean", "instructions_mean",
                "mismatch_vs_host", "kernel", "images"):
        assert key in r
    assert r["rv32ec_only"] is True and r["mismatch_vs_host"] == 0 and r["images"] == 3
    assert r["instructions_mean"] > 1000 and r["cycles_mean"] > r["instructions_mean"]


def test_decoder_rejects_non_rv32ec():
    mul = (1 << 25) | (2 << 20) | (1 << 15) | (3 << 7) | 0x33          # mul x3, x1, x2
    add_x16 = (2 << 20) | (1 << 15) | (16 << 7) | 0x33                  # add x16, x1, x2
    ok = (2 << 20) | (1 << 15) | (3 << 7) | 0x33                        # add x3, x1, x2
    code = b"".join(v.to_bytes(4, "little") for v in (ok, mul, add_x16))
    bad = [b for *_, b in rv32ec.decode(code, 0)]
    assert bad[0] is None and "mul" in bad[1] and "x16" in bad[2]
    assert "x17" in rv32ec.decode((0x4000 | (17 << 7) | 1).to_bytes(2, "little"), 0)[0][3]  # c.li


def test_flash_overflow_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(0)
    layers = [dmodel.LayerSpec("0", "fc", "8bit", 256, 80, rng.integers(-128, 128, (80, 256))),
              dmodel.LayerSpec("1", "fc", "8bit", 80, 10, rng.integers(-128, 128, (10, 80)))]
    exp = dmodel.Exported(layers, 256, 10)
    exp.model_id = exp.fingerprint()
    header = dmodel.write_header(exp, tmp_path / "big.h")
    with pytest.raises(firmware.McuError) as e:
        firmware.build(exp, header, "baseline", tmp_path / "b")
    msg = str(e.value)
    assert "flash overflow" in msg and "16384" in msg and "over by" in msg
    assert "flash:" in msg                      # the usage is printed too


@pytest.mark.parametrize("kernel", ["baseline", "fast"])
@pytest.mark.parametrize("wtype", ["Binary", "Ternary", "2bitsym", "4bitsym", "4bit", "8bit",
                                   "FP130", "NF4", "4p6"])
def test_every_single_type_build_compiles(wtype, kernel, tmp_path):
    """A build holds only its model's types (BN_WTYPES): each type on its own must
    compile warning-free (-Werror), in the layout its kernel set uses."""
    from bitnetlib.deploy import packing
    rng = np.random.default_rng(0)
    levels = np.array(packing.field_values(wtype))
    layers = [dmodel.LayerSpec("0", "fc", wtype, 256, 16, rng.choice(levels, (16, 256))),
              dmodel.LayerSpec("1", "fc", wtype, 16, 10, rng.choice(levels, (10, 16)))]
    exp = dmodel.Exported(layers, 256, 10)
    exp.model_id = exp.fingerprint()
    exp = dmodel.with_layout(exp, "cols" if kernel == "fast" else "rows")
    header = dmodel.write_header(exp, tmp_path / "m.h")
    fw = firmware.build(exp, header, kernel, tmp_path / "b")
    assert 0 < fw["flash"] <= firmware.FLASH_LIMIT


@pytest.mark.parametrize("kernel", ["baseline", "fast"])
def test_4p6_firmware_matches_the_integer_model(kernel, tmp_path):
    """4p6 on the MCU (table products, activation limit before each layer) against the
    integer model, logit for logit."""
    from bitnetlib.deploy import intmodel, packing
    rng = np.random.default_rng(2)
    levels = np.array(packing.field_values("4p6"))
    layers = [dmodel.LayerSpec("0", "fc", "4p6", 256, 16, rng.choice(levels, (16, 256))),
              dmodel.LayerSpec("1", "fc", "4p6", 16, 10, rng.choice(levels, (10, 16)))]
    exp = dmodel.Exported(layers, 256, 10)
    exp.model_id = exp.fingerprint()
    exp = dmodel.with_layout(exp, "cols" if kernel == "fast" else "rows")
    header = dmodel.write_header(exp, tmp_path / "m.h")
    fw = firmware.build(exp, header, kernel, tmp_path / "b")
    emu = emulator.Emulator(fw["elf"])
    x = intmodel.input_codes(rng.normal(size=(3, 16, 16)).astype(np.float32))
    ref = intmodel.run(exp, x)
    for i in range(3):
        st, p, lg, _ = emu.run(x[i].astype(np.int8), 0, 10)
        assert st == 0 and p == ref.pred[i] and np.array_equal(lg, ref.logits[i])


@pytest.mark.parametrize("kernel", ["baseline", "fast"])
def test_cnn_firmware_matches_host_and_fits(cnn_run, mnist, kernel, tmp_path):
    """Conv layers on the MCU: the plain-multiply conv (baseline) and the shift-add,
    centred, zero-skipping conv (fast) against the host engine, every accumulator;
    the A/B map plan keeps a small CNN inside 2 KB of SRAM."""
    r = pipeline.mcu_run(cnn_run, kernel=kernel, images=3, hooks=False, build_dir=tmp_path,
                    data=mnist, log=lambda s: None)
    assert r["mismatch_vs_host"] == 0 and r["mismatch_layers"] == 0
    assert r["fits_ch32v003"] and r["ram_bytes"] <= firmware.RAM_LIMIT


def test_fast_kernels_count_fewer_cycles(run, mnist, tmp_path):
    """The fast build does what it is for: on the small FC model, under a third of the
    baseline's cycles, and its profile names the kernels that ran."""
    r = {k: pipeline.mcu_run(run, kernel=k, images=2, build_dir=tmp_path / k, data=mnist,
                        log=lambda s: None) for k in ("baseline", "fast")}
    assert r["fast"]["cycles_mean"] < r["baseline"]["cycles_mean"] / 3
    assert "bn_pass4sym_scan" in r["fast"]["profile_mean"]   # its tile loop inside
    assert "row_4bitsym" in r["baseline"]["profile_mean"]
    layers = r["fast"]["layer_cycles_mean"]
    assert len(layers) == 4 and sum(layers) == pytest.approx(r["fast"]["cycles_mean"])


def test_rebuild_when_build_variables_change(run, mnist, tmp_path):
    """A build into the same directory with another RAM size relinks (a stale ELF with
    the stack top of the other size crashed the emulator)."""
    from bitnetlib.pipeline import export_run
    _, _, exp = export_run(run, mnist, layout="rows")
    header = dmodel.write_header(exp, tmp_path / "m.h")
    tops = []
    for ram in (2048, 4096):
        fw = firmware.build(exp, header, "baseline", tmp_path / "b", ram_size=ram, ram_limit=ram)
        tops.append(emulator.Emulator(fw["elf"], ram).estack)
    assert tops == [0x20000800, 0x20001000]


def test_sram_overflow_falls_back_and_is_flagged(tmp_path):
    """A model whose buffers exceed 2 KB of SRAM (Binary 256-400-10: 2,000 bytes of
    accumulators and activations) is measured on a bigger virtual chip and reported
    as not fitting; the fast build first tries its kernels in flash."""
    rng = np.random.default_rng(1)
    layers = [dmodel.LayerSpec("0", "fc", "Binary", 256, 400, rng.choice([-1, 1], (400, 256))),
              dmodel.LayerSpec("1", "fc", "Binary", 400, 10, rng.choice([-1, 1], (10, 400)))]
    exp = dmodel.Exported(layers, 256, 10)
    exp.model_id = exp.fingerprint()
    header = dmodel.write_header(exp, tmp_path / "wide.h")
    notes = []
    image = rng.integers(-128, 128, 256).astype(np.int8)
    fw, emu, fits, hot = pipeline.fitting_build(exp, header, "baseline", tmp_path / "b", image,
                                            notes.append)
    assert not fits and "SRAM overflow" in notes[-1] and "does not fit" in notes[-1]
    status, pred, logits, _ = emu.run(image, 0, 10)
    assert status == 0 and 0 <= pred < 10


def test_image_in_sram_build_matches_host(run, mnist, tmp_path):
    """INPUT_MEM=ram (the image in bn_fw_io instead of flash) runs the same: the
    harness writes wherever the ELF keeps the image; it costs the image's bytes."""
    from bitnetlib.deploy.engine import EngineModel
    from bitnetlib.pipeline import export_run
    from bitnetlib.deploy import intmodel
    _, _, exp = export_run(run, mnist, layout="rows")
    header = dmodel.write_header(exp, tmp_path / "m.h")
    host = EngineModel(header, exp.model_id)
    x = intmodel.input_codes(mnist.test_x[:3]).astype(np.int8)
    fws = {m: firmware.build(exp, header, "baseline", tmp_path / m, input_mem=m)
           for m in ("flash", "ram")}
    assert fws["ram"]["ram_static"] >= fws["flash"]["ram_static"] + 256
    emu = emulator.Emulator(fws["ram"]["elf"])
    assert "bn_fw_input" not in emu.sym
    pred, logits = host.run(x)
    for i in range(3):
        st, p, lg, _ = emu.run(x[i], 0, 10)
        assert st == 0 and p == pred[i] and np.array_equal(lg, logits[i])


@pytest.mark.parametrize("wtype,layout", [("Binary", "cols"), ("Ternary", "cols"),
                                          ("2bitsym", "cols"), ("4bitsym", "cols"),
                                          ("4bit", "cols"), ("FP130", "cols"), ("NF4", "cols"),
                                          ("Binary", "rows")])
def test_fast_kernels_of_every_type_match_host(wtype, layout, tmp_path):
    """The fast firmware's kernels (assembly where they exist) against the host's
    reference row kernels, every layer's accumulators, on a random 256-44-13 model:
    partial tiles / words / bytes, inputs below the background (d < 0), runs of the
    background (word-wise skip), and backgrounds c whose |c| has 0, 1, 3, 4 and 7 set
    bits (the one-pass c * wsum and its fall-backs). Binary in rows: the fast firmware's
    rows kernel (the fall-back of models whose cols layout does not fit), a last row
    word of 12 inputs."""
    from bitnetlib.deploy import packing
    from bitnetlib.deploy.engine import EngineModel
    rng = np.random.default_rng(3)
    levels = np.array(packing.field_values(wtype))
    layers = [dmodel.LayerSpec("0", "fc", wtype, 256, 44, rng.choice(levels, (44, 256))),
              dmodel.LayerSpec("1", "fc", wtype, 44, 13, rng.choice(levels, (13, 44)))]
    exp = dmodel.Exported(layers, 256, 13)
    exp.model_id = exp.fingerprint()
    host = EngineModel(dmodel.write_header(exp, tmp_path / "rows.h"), exp.model_id)
    cols = dmodel.with_layout(exp, layout)
    header = dmodel.write_header(cols, tmp_path / "cols.h")
    x = rng.integers(-128, 128, (6, 256)).astype(np.int8)
    for i, c in enumerate([-20, -27, 0, 64, -127, 37]):
        x[i, rng.random(256) < 0.6] = c
        x[i, :9] = c                            # act[0] = c, then a run of it
    fw, emu, fits, hot = pipeline.fitting_build(cols, header, "fast", tmp_path / "b", x[0],
                                                lambda s: None)
    r = pipeline.check_images(emu, host, x, np.zeros(len(x), int), 13)
    assert r["mismatch_vs_host"] == 0 and r["mismatch_layers"] == 0


def test_conv_kernels_on_large_and_saturating_maps(tmp_path):
    """The fast conv kernels (RV32EC scatter, the finish pass with saturation and
    pooling, the table build's words for negative and positive weights) against the
    host engine on a synthetic CNN whose maps reach both tap blocks (inputs below 16:
    one lookup, above: two) and the int8 saturation (MAP_MAX): every accumulator of
    every layer, on random and mostly-background images."""
    from bitnetlib.deploy import intmodel
    from bitnetlib.deploy.engine import EngineModel
    rng = np.random.default_rng(1)
    ch = 6
    layers = [dmodel.LayerSpec("0", "conv", "8bit", 16, ch, rng.integers(-128, 128, (ch, 9)),
                               shift=9),
              dmodel.LayerSpec("1", "dw", "8bit", 14, ch, rng.integers(-128, 128, (ch, 9)),
                               shift=7, pool=1),
              dmodel.LayerSpec("2", "dw", "8bit", 6, ch, rng.integers(-128, 128, (ch, 9)),
                               shift=7, pool=1),
              dmodel.LayerSpec("3", "fc", "4bitsym", ch * 4, 10,
                               rng.choice(np.arange(-15, 16, 2), (10, ch * 4)))]
    exp = dmodel.Exported(layers, 256, 10)
    exp.model_id = exp.fingerprint()
    host = EngineModel(dmodel.write_header(exp, tmp_path / "rows.h"), exp.model_id)
    fw_exp = dmodel.with_layout(exp, "cols", conv_flat=True)
    fw = firmware.build(fw_exp, dmodel.write_header(fw_exp, tmp_path / "fw.h"), "fast",
                        tmp_path / "b", hot_mem="flash")     # SRAM: the stack's
    emu = emulator.Emulator(fw["elf"])
    x = rng.integers(-127, 128, (6, 256))
    x[3:, rng.random(256) < 0.6] = -127                 # a background, as in MNIST
    maps = intmodel.conv_maps([l for l in exp.layers if l.kind != "fc"], x, upto=1)
    assert maps.max() == intmodel.MAP_MAX and ((maps >= 16) & (maps < intmodel.MAP_MAX)).any()
    assert ((maps > 0) & (maps < 16)).any()               # the one-lookup tap block too
    for image in x.astype(np.int8):
        st, pred, logits, tr = emu.run(image, host.trace_len, 10)
        assert st == 0 and np.array_equal(tr, host.trace(image))


def test_a_firmware_that_hangs_is_an_error(run, mnist, tmp_path, monkeypatch):
    """A round that never reaches bn_fw_sync (here bn_run_network's first instruction
    patched to jump to itself) stops with McuError after ROUND_SECONDS, not hanging the
    caller; the unpatched firmware runs the same image."""
    from bitnetlib.deploy.intmodel import input_codes
    _, _, exp = pipeline.export_run(run)
    header = dmodel.write_header(exp, tmp_path / "m.h")
    fw = firmware.build(exp, header, "baseline", tmp_path / "b")
    emu = emulator.Emulator(fw["elf"])
    image = input_codes(mnist.test_x[:1].numpy())[0].astype(np.int8)
    assert emu.run(image, 0, 10)[0] == 0
    monkeypatch.setattr(emulator, "ROUND_SECONDS", 1)
    hung = emulator.Emulator(fw["elf"])       # a fresh one: no translated code to reuse
    hung.uc.mem_write(hung.sym["bn_run_network"], (0x6F).to_bytes(4, "little"))   # j .
    with pytest.raises(firmware.McuError, match="did not reach bn_fw_sync within 1 s"):
        hung.run(image, 0, 10)
