"""Per-channel and asymmetric weight scales (weight_scale, weight_zero_point) and
fractional bit widths in the cyclic schedule."""
import pytest
import torch

from bitnetlib import book as bk
from bitnetlib.deploy.packing import ExportError
from bitnetlib.training.config import ConfigError, load_config
from bitnetlib.training.export import export_model
from bitnetlib.training.layers import BitLinear
from bitnetlib.training.quant import get_quantizer
from bitnetlib.training.train import train
from bitnetlib.training.wscale import SCALED_TYPES, ScaledQuantizer

QUIET = dict(progress=False, log=lambda s: None)


def test_new_keys_at_their_defaults_keep_the_cache_keys():
    assert bk.config_key(load_config("configs/fc_4bitsym_64x3_aug.yaml")) == "ea1df0ab6c01385b"
    assert bk.config_key(load_config(None, ["weight_scale=channel"])) != "bb466dc4e87c6cd0"


@pytest.mark.parametrize("overrides,expect", [
    (["weight_scale=row"], "'weight_scale': 'row' is not one of tensor, channel"),
    (["weight_zero_point=zero"], "is not one of symmetric, asymmetric"),
    (["weight_scale=channel", "quant=NF4"], "uniform integer grid .* got 'NF4'"),
    (["weight_zero_point=asymmetric", "quant=Binary"], "got 'Binary'"),
    (["weight_scale=channel", "quant_per_layer=[4bit, 4bit, FP130, 4bit]"], "got 'FP130'"),
    (["weight_scale=channel", "clip_update=step"], "not supported with clip_update: step"),
    (["weight_scale=channel", "prune=l1", "prune_density=0.5"], "not supported with prune"),
    (["weight_zero_point=asymmetric", "quant_cycle=[2bitsym, 4bitsym]", "quant_cycle_period=2",
      "quant_switch_epoch=2"], "not supported with quant_cycle"),
])
def test_config_errors(overrides, expect):
    with pytest.raises(ConfigError, match=expect) as e:
        load_config(None, overrides)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", SCALED_TYPES)
def test_codes_and_values_agree_and_rows_get_their_own_grid(name):
    """dequant(codes) == fake_quant for every supported type; per row, the codes use the
    grid's levels, the clip is each row's, and the zero point centres a shifted row."""
    base = get_quantizer(name)
    q = ScaledQuantizer(base, per_channel=True, asymmetric=True)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 40, generator=g) * torch.tensor([0.1, 1, 10, 0.1, 1, 10])[:, None]
    w[3] += 0.5                                     # a row far off zero
    clip = q.choose(w, "prop", 0.25)
    codes = q.codes(w, clip)
    assert torch.equal(q.dequant(codes, clip), q.fake_quant(w, clip))
    assert codes.min() >= 0 and codes.max() < base.n_levels
    assert clip[2, 0] / clip[0, 0] == pytest.approx(100, rel=0.3)   # row scales follow rows
    step = q.step(clip)[:, 0]                       # the zero point: the row mean, in steps
    assert torch.all((clip[:, 1] * step - w.mean(1)).abs() <= step / 2 + 1e-6) and clip[3, 1] != 0
    err_row3 = (q.fake_quant(w, clip) - w)[3].abs().mean()
    sym = ScaledQuantizer(base, per_channel=True)
    sym_clip = sym.choose(w, "prop", 0.25)
    assert torch.all(sym_clip[:, 1] == 0)
    assert err_row3 < (sym.fake_quant(w, sym_clip) - w)[3].abs().mean()


def test_octav_per_channel_is_octav_of_each_row():
    from bitnetlib.training.quant import octav_clip
    q = ScaledQuantizer(get_quantizer("4bit"), per_channel=True)
    w = torch.randn(3, 500, generator=torch.Generator().manual_seed(1)) * torch.tensor([[1.], [2.], [3.]])
    clip = q.choose(w, "octav", 0.25)
    assert torch.allclose(clip[:, 0], torch.stack([octav_clip(r, 16) for r in w]))


@pytest.mark.parametrize("scale,zero", [("channel", "symmetric"), ("tensor", "asymmetric"),
                                        ("channel", "asymmetric")])
def test_short_run_learns_with_each_option(mnist, mnist_subset, tmp_path, scale, zero):
    """A real 2-epoch run learns; the layers carry the new clips; export refuses them."""
    cfg = load_config(None, ["epochs=2", "augment=false", "widths=[32]", "lr=0.003",
                             "quant=4bitsym", f"weight_scale={scale}", f"weight_zero_point={zero}"])
    model, metrics = train(cfg, tmp_path, data=mnist_subset(3000, 2000), **QUIET)
    assert metrics[-1]["test_acc"] > 80.0 and metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    layers = [m for m in model.modules() if isinstance(m, BitLinear)]
    assert [tuple(m.clip.shape) for m in layers] == \
        [(32 if scale == "channel" else 1, 2), (10 if scale == "channel" else 1, 2)]
    assert all(float(m.clip[:, 0].min()) > 0 for m in layers)
    assert {m.quantizer.name for m in layers} == \
        {"4bitsym" + "+channel" * (scale == "channel") + "+asym" * (zero == "asymmetric")}
    with pytest.raises(ExportError, match="has no C kernel"):
        export_model(model)


# ---------------------------------------------------------------- what the MCU would pay

def test_rescale_bench_is_bit_exact_and_counts_cycles(monkeypatch):
    """Every variant of firmware/rescalebench.c, emulated, equals the numpy reference on
    every output (emulate raises otherwise, as a wrong reference shows); the per-output
    shift costs less than a shift-add multiply, which costs less than __mulsi3."""
    from bitnetlib.deploy import rescalebench as rb
    from bitnetlib.deploy.firmware import McuError, have_toolchain
    if not have_toolchain():
        pytest.skip("no RISC-V toolchain")
    layers = rb.random_layers([(16, 40), (10, 16)], seed=3)
    res = rb.emulate(layers)
    assert [(r["variant"], r["layer"]) for r in res] == \
        [(v, i) for v in rb.VARIANTS for i in range(2)]
    cyc = {v: sum(r["cycles"] for r in res if r["variant"] == v) for v in rb.VARIANTS}
    assert 0 < cyc["shift"] < cyc["mult_sa"] < cyc["mult"]
    assert 0 < cyc["zero_t"] < cyc["zero_ch_sa"] < cyc["zero_ch"]
    wrong = rb.reference
    monkeypatch.setattr(rb, "reference", lambda l, v: wrong(l, v) + (v == "mult_sa"))
    with pytest.raises(McuError, match="mult_sa, layer 0: the emulated result differs"):
        rb.emulate(layers)


# ---------------------------------------------------------------- fractional bit widths

def test_fractional_widths_give_round_2_to_the_b_levels_and_whole_widths_the_known_types():
    from bitnetlib.training.fracbits import LevelGrid, quantizer_for
    for b, n in [(1, 2), (1.5, 3), (2, 4), (2.25, 5), (2.5, 6), (2.75, 7), (3, 8), (3.5, 11),
                 (4, 16), (8, 256)]:
        q = quantizer_for(b)
        assert q.n_levels == n and q.edge == n / 2 and (0.0 in q.levels) == (n % 2 == 1)
        assert quantizer_for(q.name).levels == q.levels           # as the metrics name it
    w = torch.randn(2000, generator=torch.Generator().manual_seed(0))
    for b, name in [(2, "2bitsym"), (4, "4bitsym"), (1.585, "Ternary")]:
        clip = w.abs().mean() / 0.25
        assert torch.equal(quantizer_for(b).fake_quant(w, clip), get_quantizer(name).fake_quant(w, clip))
    q = LevelGrid(6)
    codes = q.codes(w, torch.tensor(3.0))
    assert torch.equal(q.dequant(codes, torch.tensor(3.0)), q.fake_quant(w, torch.tensor(3.0)))
    assert set(codes.unique().tolist()) == set(range(6))


def test_fractional_activation_widths_give_odd_level_counts():
    from bitnetlib.training.quant import quantize_activations
    x = torch.linspace(-1, 1, 5001)[None]
    counts = {b: len(quantize_activations(x, b).unique()) for b in (2, 2.5, 3, 3.5, 4, 8)}
    assert counts == {2: 3, 2.5: 5, 3: 7, 3.5: 11, 4: 15, 8: 255}


@pytest.mark.parametrize("overrides,expect", [
    (["quant_cycle=[2, 9]", "quant_cycle_period=2", "quant_switch_epoch=2"],
     "'quant_cycle': 9 is not one of .* or a bit width 1..8"),
    (["quant_cycle=[2, true]", "quant_cycle_period=2", "quant_switch_epoch=2"], "True is not"),
    (["act_cycle=[4, 5.5]", "quant_cycle_period=2", "quant_switch_epoch=2", "act_quant=lsq"],
     "need act_quant: absmax"),
    (["act_cycle=[1.5, 4]", "quant_cycle_period=2", "quant_switch_epoch=2"], "2..8"),
])
def test_fractional_cycle_errors(overrides, expect):
    with pytest.raises(ConfigError, match=expect) as e:
        load_config(None, overrides)
    assert "\n" not in str(e.value)


def test_fractional_cycle_trains_through_the_level_counts(mnist, mnist_subset, tmp_path):
    """A real run cycles the weights through 4, 6 and 8 levels and the activations
    through fractional widths, learns, and ends at its quant (4bitsym, 8-bit inputs)."""
    cfg = load_config(None, ["epochs=4", "augment=false", "widths=[32]", "lr=0.003",
                             "quant_cycle=[2, 2.5, 3]", "quant_cycle_period=3",
                             "act_cycle=[4, 5.5]", "quant_switch_epoch=3"])
    model, metrics = train(cfg, tmp_path, data=mnist_subset(3000, 2000), **QUIET)
    assert [m["layers"][0]["type"] for m in metrics] == ["4-level", "6-level", "8-level", "4bitsym"]
    assert metrics[-1]["test_acc"] > 80.0 and metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert {(m.quantizer.name, m.act_bits) for m in model.modules() if isinstance(m, BitLinear)} \
        == {("4bitsym", 8)}
