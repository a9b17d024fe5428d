"""Self-compression (bitnetlib.training.selfcomp): levels, gradients, the size penalty,
removed channels, config validation, export refusal, resume."""
import doctest

import pytest
import torch

from bitnetlib.deploy.packing import ExportError
from bitnetlib.training import selfcomp
from bitnetlib.training.config import ConfigError, config_dict, load_config, make_config
from bitnetlib.training.export import check_deployable
from bitnetlib.training.models import build_model
from bitnetlib.training.rundir import load_run
from bitnetlib.training.selfcomp import SelfCompLinear, mean_bits, selfcomp_quant
from bitnetlib.training.stats import model_stats
from bitnetlib.training.train import train

QUIET = dict(progress=False, log=lambda s: None)
RUN = ["epochs=2", "augment=false", "widths=[16]", "device=cpu", "threads=1"]


def test_doctests():
    assert doctest.testmod(selfcomp).failed == 0


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
def test_levels_are_the_signed_integers_of_the_bit_depth_times_2_to_e(bits):
    w = torch.linspace(-100, 100, 2001)
    q = selfcomp_quant(w, torch.tensor(float(bits)), torch.tensor(-2.0))
    levels = sorted(set((q * 4).tolist()))
    assert levels == list(range(-2 ** (bits - 1), 2 ** (bits - 1)))


def test_rounding_to_nearest_inside_the_range():
    w = torch.tensor([0.24, 0.26, -0.74, -0.76])
    assert selfcomp_quant(w, torch.tensor(8.0), torch.tensor(-1.0)).tolist() == [0.0, 0.5, -0.5, -1.0]


def test_gradients_reach_bits_and_exponent():
    """STE: the clipped weights give b and e a gradient, the rest pass to w unchanged."""
    w = torch.tensor([0.1, -0.3, 5.0], requires_grad=True)
    b = torch.tensor(2.0, requires_grad=True)
    e = torch.tensor(-2.0, requires_grad=True)
    selfcomp_quant(w, b, e).sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 0.0]         # in range: identity; clipped: none
    assert float(b.grad) > 0 and float(e.grad) > 0    # more bits or a larger step: less clipping


def test_layer_gradients_through_the_fused_function():
    torch.manual_seed(0)
    layer = SelfCompLinear(12, 5, "channel", init_bits=3.0)
    with torch.no_grad():
        layer.exponent.add_(-1.0)                     # clip some weights
    layer(torch.randn(7, 12)).pow(2).sum().backward()
    assert layer.bits.grad.abs().sum() > 0 and layer.exponent.grad.abs().sum() > 0
    assert layer.weight.grad.abs().sum() > 0
    assert layer.bits.shape == (5, 1) and SelfCompLinear(12, 5, "layer").bits.shape == (1, 1)


def test_initial_exponent_clips_nothing():
    torch.manual_seed(0)
    layer = SelfCompLinear(30, 6, "channel", init_bits=8.0)
    w = layer.weight.detach()
    assert ((layer.quantized_weight() - w).abs() <= torch.exp2(layer.exponent) / 2 + 1e-7).all()


def test_channel_at_zero_bits_is_exactly_zero_and_costs_nothing():
    torch.manual_seed(0)
    layer = SelfCompLinear(10, 4, "channel", init_bits=4.0)
    with torch.no_grad():
        layer.bits[1] = 0.3
        layer.bits[2] = -2.0
    q = layer.quantized_weight()
    assert torch.equal(q[1], torch.zeros(10)) and torch.equal(q[2], torch.zeros(10))
    assert (q[0] != 0).any()
    s = layer.selfcomp_stats()
    assert s["row_bits"] == [4.0, 0.0, 0.0, 4.0] and s["zero_channels"] == 0.5
    assert s["bits"] == 80 and s["bytes"] == 10 and float(layer.size_bits().detach()) == 80


def test_mean_bits_is_total_bits_over_total_weights():
    model = build_model(make_config({"widths": [8], "selfcomp": "layer", "selfcomp_bits": 6.0}))
    assert float(mean_bits(model).detach()) == 6.0


def test_penalty_lowers_the_bits(mnist, mnist_subset, tmp_path):
    """A tiny real run: with a large gamma the learned bits fall, more than without it."""
    data = mnist_subset(500, 500)
    mean = {}
    for gamma in (0.0, 1.0):
        cfg = load_config(None, RUN + ["selfcomp=channel", f"selfcomp_gamma={gamma}",
                                       "selfcomp_lr_mult=100"])
        _, metrics = train(cfg, tmp_path / str(gamma), data=data, **QUIET)
        layers = metrics[-1]["layers"]
        mean[gamma] = sum(s["bits"] for s in layers) / sum(s["n_weights"] for s in layers)
        assert all(s["type"] == "selfcomp-channel" and "zero_channels" in s for s in layers)
    assert mean[1.0] < 8.0 and mean[1.0] < mean[0.0]


def test_run_saves_and_reloads_the_learned_bits(mnist, mnist_subset, tmp_path):
    cfg = load_config(None, RUN + ["epochs=1", "selfcomp=layer", "selfcomp_lr_mult=100"])
    model, metrics = train(cfg, tmp_path, data=mnist_subset(300, 300), **QUIET)
    _, loaded = load_run(tmp_path, "cpu")
    assert model_stats(loaded) == metrics[-1]["layers"] == model_stats(model)
    assert all(isinstance(m, SelfCompLinear) for m in loaded if hasattr(m, "weight"))


@pytest.mark.parametrize("overrides,expect", [
    (["selfcomp=block"], "'selfcomp'"),
    (["selfcomp_gamma=0.5"], "needs selfcomp"),
    (["selfcomp_bits=4"], "needs selfcomp"),
    (["selfcomp=layer", "selfcomp_gamma=-1"], "'selfcomp_gamma'"),
    (["selfcomp=layer", "selfcomp_bits=0"], "1..16"),
    (["selfcomp=layer", "selfcomp_lr_mult=0"], "'selfcomp_lr_mult'"),
    (["selfcomp=channel", "prune=l1", "prune_density=0.5"], "prune"),
    (["selfcomp=channel", "model=cnn"], "model"),
    (["selfcomp=channel", "act_quant=lsq"], "act_quant"),
    (["selfcomp=layer", "quant_per_layer=[8bit, 8bit, 8bit, 8bit]"], "quant_per_layer"),
])
def test_selfcomp_config_errors(overrides, expect):
    with pytest.raises(ConfigError, match=expect) as e:
        load_config(None, overrides)
    assert "\n" not in str(e.value)


def test_keys_at_their_default_leave_the_config_dict_alone():
    assert not {k for k in config_dict(load_config(None)) if k.startswith("selfcomp")}
    assert config_dict(load_config(None, ["selfcomp=layer"]))["selfcomp"] == "layer"


def test_export_refuses_selfcomp_runs():
    with pytest.raises(ExportError, match="selfcomp='channel'") as e:
        check_deployable(make_config({"selfcomp": "channel"}), "runs/x")
    assert "\n" not in str(e.value)


def test_bit_depths_train_at_their_own_learning_rate():
    from types import SimpleNamespace
    from bitnetlib.training.train import make_optimizer, set_epoch_quant
    cfg = make_config({"widths": [8], "selfcomp": "channel", "selfcomp_lr_mult": 5.0,
                       "scheduler": "constant"})
    model = build_model(cfg)
    opt = make_optimizer(model, cfg)
    set_epoch_quant(SimpleNamespace(cfg=cfg, model=model, opt=opt), 0)
    assert [g["lr"] for g in opt.param_groups] == [cfg.lr, 5 * cfg.lr]
    assert isinstance(model[1].quantizer, selfcomp.SelfCompQuantizer)    # kept its type
    plain = make_config({"widths": [8]})                 # other runs: one group, as before
    assert len(make_optimizer(build_model(plain), plain).param_groups) == 1


def test_engine_types_cover_the_learned_bits():
    types = selfcomp.engine_types([{"mean_bits": b} for b in (1.0, 1.7, 2.0, 7.9)])
    assert types == ["Binary", "2bitsym", "2bitsym", "8bit"]
