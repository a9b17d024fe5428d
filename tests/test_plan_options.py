"""The research-plan options: norm, quantization switch and cycle, init_from, pruning,
weight averaging and mixed precision per layer."""
import pytest
import torch

from bitnetlib import book as bk
from bitnetlib.training.config import ConfigError, load_config
from bitnetlib.training.layers import BitLinear, _BitLinearFn, normalize, quant_layers
from bitnetlib.training.prune import (l1_mask, n_kept, prune_model, pruned_copy, random_mask,
                                      weight_density)
from bitnetlib.training.quant import get_quantizer, quantize_activations
from bitnetlib.training.rundir import load_run
from bitnetlib.training.train import evaluate, train

QUIET = dict(progress=False, log=lambda s: None)



# ---------------------------------------------------------------- config

def test_added_keys_keep_existing_cache_keys():
    """Hashes computed before the keys were added: cached runs stay valid."""
    assert bk.config_key(load_config(None)) == "bb466dc4e87c6cd0"
    assert bk.config_key(load_config("configs/fc_4bitsym_64x3_aug.yaml")) == "ea1df0ab6c01385b"
    assert bk.config_key(load_config(None, ["norm=layernorm"])) != "bb466dc4e87c6cd0"


@pytest.mark.parametrize("overrides,expect", [
    (["prune_rewind=true"], "needs prune: l1 and init_from"),
    (["act_cycle=[2, 8]"], "period >= 2"),
    (["switch_types=[2bitsym, 8bit]"], "including quant"),
    (["switch_types=[Binary, 4bitsym]"], "not Binary"),
    (["switch_types=[2bitsym, 4bitsym]", "clip=octav"], "clip: prop"),
    (["switch_feature_weight=1.0"], "needs switch_types"),
    (["act_cycle=[2, 8]", "quant_cycle_period=2"], "go together"),
    (["act_cycle=[2, 9]", "quant_cycle_period=2", "quant_switch_epoch=2"], "2..8"),
    (["act_cycle=[4]", "quant_cycle_period=2", "quant_switch_epoch=2"], "at least"),
    (["norm=batchnorm"], "layernorm"),
    (["prune=magnitude"], "random"),
    (["prune_density=0.5"], "needs prune"),
    (["prune=l1", "prune_density=0"], "0 < density"),
    (["start_quant=8bit"], "go together"),
    (["quant_switch_epoch=3"], "go together"),
    (["start_quant=9bit", "quant_switch_epoch=1"], "4bitsym"),
    (["start_quant=8bit", "quant_switch_epoch=5", "epochs=5"], "1..4"),
    (["quant_cycle=[2bitsym, 4bitsym]", "quant_cycle_period=2"], "go together"),
    (["quant_cycle=[2bitsym, 5bit]", "quant_cycle_period=2", "quant_switch_epoch=2"], "'5bit'"),
    (["quant_cycle=[2bitsym]", "quant_cycle_period=2", "quant_switch_epoch=2"], "at least 2"),
    (["quant_cycle=[2bitsym, 8bit]", "quant_cycle_period=1", "quant_switch_epoch=2"], ">= 2"),
    (["quant_cycle_period=4"], "needs quant_cycle"),
    (["quant_cycle=[2bitsym, 8bit]", "quant_cycle_period=2", "start_quant=8bit",
      "quant_switch_epoch=2"], "one of them"),
    (["quant_cycle=[2bitsym, 8bit]", "quant_cycle_period=2", "quant_switch_epoch=2",
      "quant_per_layer=[2bitsym, 4bitsym, 4bitsym, 4bitsym]"], "quant_per_layer"),
])
def test_plan_config_errors(overrides, expect):
    with pytest.raises(ConfigError, match=expect) as e:
        load_config(None, overrides)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- LayerNorm

def reference_forward(x, w, w_q, relu, norm):
    """The fused function written with autograd ops (STE for both quantizers)."""
    x = x.clamp_min(0) if relu else x
    xn = normalize(x, norm)
    xq = xn + (quantize_activations(xn) - xn).detach()
    return xq.matmul((w + (w_q - w).detach()).t())


@pytest.mark.parametrize("norm", ["rmsnorm", "layernorm"])
@pytest.mark.parametrize("relu", [False, True])
def test_fused_linear_matches_autograd(norm, relu):
    torch.manual_seed(0)
    x = torch.randn(8, 24, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 24, dtype=torch.float64, requires_grad=True)
    w_q = (w.detach() * 4).round() / 4
    g = torch.randn(8, 5, dtype=torch.float64)
    y = _BitLinearFn.apply(x, w, w_q, relu, norm == "layernorm")
    gx, gw = torch.autograd.grad(y, (x, w), g)
    y_ref = reference_forward(x, w, w_q, relu, norm)
    gx_ref, gw_ref = torch.autograd.grad(y_ref, (x, w), g)
    assert torch.allclose(y, y_ref) and torch.allclose(gw, gw_ref)
    assert torch.allclose(gx, gx_ref, atol=1e-10)


def test_layernorm_centres_and_loses_zeros():
    torch.manual_seed(0)
    x = torch.randn(64, 32)                         # half the ReLU outputs are zero
    rms = BitLinear(32, 4, get_quantizer("4bitsym"), relu_input=True)
    ln = BitLinear(32, 4, get_quantizer("4bitsym"), relu_input=True, norm="layernorm")
    n_rms = normalize(x.clamp_min(0))
    n_ln = normalize(x.clamp_min(0), "layernorm")
    assert torch.allclose(n_ln.mean(-1), torch.zeros(64), atol=1e-5)
    assert torch.allclose(n_ln.pow(2).mean(-1), torch.ones(64), atol=1e-4)
    assert torch.allclose(n_rms.pow(2).mean(-1), torch.ones(64), atol=1e-4)
    zeros_rms = float((rms.quantized_input(x) == 0).float().mean())
    zeros_ln = float((ln.quantized_input(x) == 0).float().mean())
    assert torch.all(rms.quantized_input(x)[x <= 0] == 0)    # RMSNorm keeps ReLU's zeros
    assert zeros_rms >= float((x <= 0).float().mean())
    assert zeros_ln < 0.05


def test_layernorm_run_trains_and_reloads(mnist, mnist_subset, tmp_path):
    cfg = load_config(None, ["epochs=2", "augment=false", "widths=[16]", "norm=layernorm",
                             "lr=0.003"])
    model, metrics = train(cfg, tmp_path, data=mnist_subset(2000, 1000), **QUIET)
    assert all(l.norm == "layernorm" for l in quant_layers(model))
    assert metrics[-1]["test_acc"] > 60
    _, again = load_run(tmp_path)
    assert all(l.norm == "layernorm" for l in quant_layers(again))


# ---------------------------------------------------------------- pruning

def test_masks_have_exact_density():
    torch.manual_seed(0)
    w = torch.randn(30, 17)
    for density in (0.1, 0.25, 0.5, 0.9):
        m_l1 = l1_mask(w, density)
        m_rand = random_mask(w, density, torch.Generator().manual_seed(0))
        assert int(m_l1.sum()) == int(m_rand.sum()) == n_kept(w.numel(), density)
        # L1 keeps exactly the largest magnitudes
        assert w.abs()[m_l1.bool()].min() >= w.abs()[~m_l1.bool()].max()
    assert not torch.equal(l1_mask(w, 0.5), random_mask(w, 0.5, torch.Generator()))


def test_pruned_weights_are_zero_after_quantization():
    torch.manual_seed(0)
    layer = BitLinear(40, 10, get_quantizer("4bitsym"))      # 4bitsym has no zero level
    layer.update_clip("prop", 0.25)
    prune_model(torch.nn.Sequential(layer), "random", 0.3)
    layer.update_clip("prop", 0.25)
    assert weight_density(torch.nn.Sequential(layer)) == [n_kept(400, 0.3) / 400]
    # the clip comes from the kept weights only
    kept = layer.weight.detach()[layer.weight_mask.bool()]
    assert float(layer.clip) == pytest.approx(float(kept.abs().mean() / 0.25))


def pruned_cfg(tmp_path, mnist_subset, method, extra=()):
    source = load_config(None, ["epochs=1", "augment=false", "widths=[16]"])
    train(source, tmp_path / "dense", data=mnist_subset(1000, 1000), **QUIET)
    return load_config(None, ["epochs=2", "augment=true", "widths=[16]", f"prune={method}",
                              "prune_density=0.25", f"init_from={tmp_path / 'dense'}",
                              *extra])


def test_mask_kept_through_training_and_resume(mnist, mnist_subset, tmp_path):
    cfg = pruned_cfg(tmp_path, mnist_subset, "l1")
    data = mnist_subset(1000, 1000)
    full, metrics = train(cfg, tmp_path / "a", data=data, **QUIET)
    expect = [n_kept(l.weight.numel(), 0.25) / l.weight.numel() for l in quant_layers(full)]
    assert weight_density(full) == pytest.approx(expect)
    for layer in quant_layers(full):
        assert torch.all(layer.weight[~layer.weight_mask.bool()] == 0)
    train(cfg, tmp_path / "b", data=data, stop_after=1, **QUIET)
    resumed, _ = train(cfg, tmp_path / "b", data=data, **QUIET)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    loaded, _ = bk.run_cached(cfg, cache_dir=tmp_path / "cache", data=data)
    assert weight_density(loaded) == pytest.approx(expect)


def test_l1_pruning_starts_from_the_source_weights(mnist, mnist_subset, tmp_path):
    cfg = pruned_cfg(tmp_path, mnist_subset, "l1", ["epochs=1", "lr=1.0e-12"])
    _, source = load_run(tmp_path / "dense")
    pruned, _ = train(cfg, tmp_path / "p", data=mnist_subset(1000, 1000), **QUIET)
    for s, p in zip(quant_layers(source), quant_layers(pruned)):
        assert torch.equal(p.weight_mask, l1_mask(s.weight, 0.25))
        assert torch.allclose(p.weight, s.weight * p.weight_mask, atol=1e-6)


def test_lottery_ticket_rewinds_the_kept_weights_to_the_initialisation(mnist, mnist_subset,
                                                                        tmp_path):
    """prune_rewind: the masks come from the trained source (L1), the kept weights from
    the run's own seeded initialisation, which is the source's initialisation too."""
    from bitnetlib.training.models import build_model
    cfg = pruned_cfg(tmp_path, mnist_subset, "l1", ["epochs=1", "lr=1.0e-12",
                                                    "prune_rewind=true"])
    _, source = load_run(tmp_path / "dense")
    torch.manual_seed(cfg.seed)
    init = build_model(cfg)
    pruned, _ = train(cfg, tmp_path / "p", data=mnist_subset(1000, 1000), **QUIET)
    for s, i, p in zip(quant_layers(source), quant_layers(init), quant_layers(pruned)):
        assert torch.equal(p.weight_mask, l1_mask(s.weight, 0.25))
        assert torch.allclose(p.weight, i.weight * p.weight_mask, atol=1e-6)
        assert not torch.allclose(p.weight, s.weight * p.weight_mask, atol=1e-3)


# ---------------------------------------------------------------- quantization switch

def test_act_cycle_cycles_the_activation_bits_then_settles(mnist, mnist_subset, tmp_path):
    """Cyclic precision of the activations: the BitLinear layers' input bits follow
    the cycle epoch by epoch until quant_switch_epoch, then act_bits (8, deployable)."""
    from bitnetlib.training.schedule import act_bits_at
    from bitnetlib.training.layers import BitLinear
    cfg = load_config(None, ["epochs=5", "augment=false", "widths=[16]", "act_cycle=[3, 8]",
                             "quant_cycle_period=2", "quant_switch_epoch=4"])
    assert [act_bits_at(cfg, e) for e in range(5)] == [3, 8, 3, 8, 8]
    seen = []
    model, metrics = train(cfg, tmp_path, data=mnist_subset(1000, 1000), stop_after=1, **QUIET)
    seen.append({m.act_bits for m in model.modules() if isinstance(m, BitLinear)})
    model, metrics = train(cfg, tmp_path, data=mnist_subset(1000, 1000), **QUIET)
    seen.append({m.act_bits for m in model.modules() if isinstance(m, BitLinear)})
    assert seen == [{3}, {8}] and len(metrics) == 5


def test_switchable_precision_trains_one_set_of_weights_for_every_type(mnist, mnist_subset,
                                                                        tmp_path):
    """switch_types: every type of the shared weights is evaluated per epoch and learns;
    the saved model is the main type's, and the narrow type gets its gradient from the
    widest one (a model trained with only 8bit in the list would differ)."""
    from bitnetlib.training.layers import BitLinear
    base = ["epochs=2", "augment=false", "widths=[32]", "lr=0.003", "quant=4bitsym"]
    cfg = load_config(None, [*base, "switch_types=[2bitsym, 4bitsym, 8bit]",
                             "switch_feature_weight=1.0"])
    model, metrics = train(cfg, tmp_path / "s", data=mnist_subset(3000, 2000), **QUIET)
    accs = metrics[-1]["switch_test_acc"]
    assert set(accs) == {"2bitsym", "4bitsym", "8bit"} and min(accs.values()) > 70.0
    assert accs["4bitsym"] == metrics[-1]["test_acc"]
    assert {m.quantizer.name for m in model.modules() if isinstance(m, BitLinear)} == {"4bitsym"}
    pair = load_config(None, [*base, "switch_types=[4bitsym, 8bit]"])
    other, _ = train(pair, tmp_path / "p", data=mnist_subset(3000, 2000), **QUIET)
    assert not torch.equal(model.state_dict()["1.weight"], other.state_dict()["1.weight"])


def test_quant_switch_changes_levels_at_the_epoch(mnist, mnist_subset, tmp_path):
    cfg = load_config(None, ["epochs=3", "augment=false", "widths=[16]", "start_quant=8bit",
                             "quant_switch_epoch=2"])
    data = mnist_subset(1000, 1000)
    full, metrics = train(cfg, tmp_path / "a", data=data, **QUIET)
    assert [m["layers"][0]["type"] for m in metrics] == ["8bit", "8bit", "4bitsym"]
    assert len(metrics[0]["layers"][0]["histogram"]) == 256
    assert len(metrics[2]["layers"][0]["histogram"]) == 16
    assert all(l.quantizer.name == "4bitsym" for l in quant_layers(full))
    train(cfg, tmp_path / "b", data=data, stop_after=1, **QUIET)     # killed before the switch
    resumed, _ = train(cfg, tmp_path / "b", data=data, **QUIET)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


# ---------------------------------------------------------------- zero activations

def test_zero_inputs_and_skipped_pairs():
    from bitnetlib.training.models import FCModel
    from bitnetlib.training.probes import input_zero_fractions, nonzero_pairs
    torch.manual_seed(0)
    x = torch.randn(50, 1, 16, 16)
    for norm in ("rmsnorm", "layernorm"):
        model = FCModel([32, 32], ["4bitsym"] * 3, norm=norm)
        for layer in quant_layers(model):
            layer.update_clip("prop", 0.25)
        zeros, pairs = input_zero_fractions(model, x), nonzero_pairs(model, x)
        sizes = [(256, 32), (32, 32), (32, 10)]
        for z, p, (n_in, n_out) in zip(zeros, pairs, sizes):
            assert p == pytest.approx((1 - z) * n_in * n_out)
        if norm == "rmsnorm":
            assert min(zeros[1:]) > 0.3        # ReLU zeros survive RMSNorm
        else:
            assert max(zeros[1:]) < 0.05


def test_pruned_copy_leaves_the_model_alone():
    from bitnetlib.training.models import FCModel
    torch.manual_seed(0)
    model = FCModel([16], ["4bitsym"] * 2)
    for layer in quant_layers(model):
        layer.update_clip("prop", 0.25)
    before = [l.weight.detach().clone() for l in quant_layers(model)]
    pruned = pruned_copy(model, load_config(None), "random", 0.2)
    assert weight_density(pruned) == [n_kept(4096, 0.2) / 4096, n_kept(160, 0.2) / 160]
    assert all(torch.equal(b, l.weight) for b, l in zip(before, quant_layers(model)))
    assert not any(l.is_pruned for l in quant_layers(model))


# ---------------------------------------------------------------- weight averaging

def test_swa_saves_the_average_and_resumes(mnist, mnist_subset, tmp_path):
    cfg = load_config(None, ["epochs=3", "augment=true", "widths=[16]", "swa_start_epoch=1",
                             "scheduler=constant"])
    data = mnist_subset(1000, 1000)
    _, metrics = train(cfg, tmp_path / "a", data=data, **QUIET)
    assert "swa_test_acc" not in metrics[0] and all("swa_test_acc" in m for m in metrics[1:])
    train(cfg, tmp_path / "b", data=data, stop_after=2, **QUIET)
    w1 = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    w2 = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    saved = torch.load(tmp_path / "a" / "model.pt", weights_only=False)["model"]
    for name in ("1.weight", "2.weight"):
        assert not torch.equal(w1[name], w2[name])
        assert torch.allclose(saved[name], (w1[name] + w2[name]) / 2, atol=1e-6)
    train(cfg, tmp_path / "b", data=data, **QUIET)
    resumed = torch.load(tmp_path / "b" / "model.pt", weights_only=False)["model"]
    for k in saved:
        assert torch.equal(saved[k], resumed[k]), k
    _, loaded = load_run(tmp_path / "a")
    acc = evaluate(loaded, mnist.test_x[:1000], mnist.test_y[:1000])[1]
    assert acc == pytest.approx(metrics[-1]["swa_test_acc"])


def test_swa_config_error():
    with pytest.raises(ConfigError, match="swa_start_epoch"):
        load_config(None, ["epochs=5", "swa_start_epoch=5"])


def test_checkpoint_model_is_the_last_iterate(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("BITNET_CACHE", str(tmp_path))
    monkeypatch.delenv("BITNET_RECOMPUTE", raising=False)
    cfg = {"epochs": 2, "augment": False, "widths": [8], "train_subset": 500, "device": "cpu",
           "swa_start_epoch": 0}
    averaged, metrics = bk.run_cached(cfg)
    last = bk.checkpoint_model(cfg)
    acc = evaluate(last, mnist.test_x, mnist.test_y)[1]
    assert acc == pytest.approx(metrics[-1]["test_acc"])
    assert not torch.equal(quant_layers(last)[0].weight, quant_layers(averaged)[0].weight)


# ---------------------------------------------------------------- quant_per_layer, cycle

def test_quant_per_layer_is_kept_through_training(mnist, mnist_subset, tmp_path):
    """Without a schedule the train loop leaves every layer's own type alone."""
    cfg = load_config(None, ["epochs=2", "augment=false", "widths=[16, 16]",
                             "quant_per_layer=[2bitsym, 8bit, None]"])
    model, metrics = train(cfg, tmp_path, data=mnist_subset(500, 1000), **QUIET)
    expect = ["2bitsym", "8bit", "None"]
    assert [l.quantizer.name for l in quant_layers(model)] == expect
    assert all([s["type"] for s in m["layers"]] == expect for m in metrics)


def test_cycle_schedule_per_epoch():
    from bitnetlib.training.schedule import linear_quant_at
    cfg = load_config(None, ["epochs=10", "quant_cycle=[2bitsym, 4bitsym, 8bit]",
                             "quant_cycle_period=4", "quant_switch_epoch=8", "quant=4bitsym"])
    got = [linear_quant_at(cfg, e) for e in range(10)]
    assert got == ["2bitsym", "2bitsym", "4bitsym", "8bit"] * 2 + ["4bitsym"] * 2
    assert linear_quant_at(load_config(None), 0) == ""


def test_quant_cycle_trains_each_type_and_resumes(mnist, mnist_subset, tmp_path):
    cfg = load_config(None, ["epochs=5", "augment=true", "widths=[16]", "clip=octav",
                             "octav_freeze_epoch=1", "quant_cycle=[2bitsym, 8bit]",
                             "quant_cycle_period=2", "quant_switch_epoch=4"])
    data = mnist_subset(1000, 1000)
    full, metrics = train(cfg, tmp_path / "a", data=data, **QUIET)
    assert [m["layers"][0]["type"] for m in metrics] == ["2bitsym", "8bit"] * 2 + ["4bitsym"]
    # a type change re-chooses the clip although OCTAV clips are frozen from epoch 1 on
    clips = [m["layers"][0]["clip"] for m in metrics]
    assert len(set(clips)) == 5
    train(cfg, tmp_path / "b", data=data, stop_after=3, **QUIET)    # killed mid-cycle
    resumed, _ = train(cfg, tmp_path / "b", data=data, **QUIET)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


# ---------------------------------------------------------------- mixed precision

def test_packed_bytes_match_the_trained_model():
    from bitnetlib.training.mixed import packed_bytes
    from bitnetlib.training.models import build_model
    from bitnetlib.training.stats import model_stats
    quants = ["2bitsym", "Ternary", "8bit"]
    cfg = load_config(None, ["widths=[24, 12]", f"quant_per_layer={quants}".replace("'", "")])
    model = build_model(cfg)
    assert packed_bytes([24, 12], quants) == sum(s["bytes"] for s in model_stats(model))
    with pytest.raises(ValueError, match="3 linear layers but 2"):
        packed_bytes([24, 12], quants[:2])


def test_assignments_fit_the_budget_and_sample_without_repeats():
    from bitnetlib.training.mixed import assignments, packed_bytes
    types = ["Binary", "2bitsym", "4bitsym", "8bit"]
    budget = packed_bytes([32, 32], ["4bitsym"] * 3)
    every = assignments([32, 32], types, budget)
    assert ["4bitsym"] * 3 in every and ["8bit"] * 3 not in every
    assert all(packed_bytes([32, 32], a) <= budget for a in every)
    assert len(every) == sum(packed_bytes([32, 32], [a, b, c]) <= budget
                             for a in types for b in types for c in types)
    some = assignments([32, 32], types, budget, max_trials=5, seed=1)
    assert len(some) == 5 and all(a in every for a in some)
    assert len({tuple(a) for a in some}) == 5
    assert some == assignments([32, 32], types, budget, max_trials=5, seed=1)
    assert some != assignments([32, 32], types, budget, max_trials=5, seed=2)


def test_pareto_front_is_not_dominated():
    import random
    from bitnetlib.training.mixed import pareto_front
    rng = random.Random(0)
    pts = [(rng.randint(1, 20), rng.randint(0, 30) / 3) for _ in range(60)]
    front = pareto_front(pts)
    dominated = lambda p: any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in pts)
    assert all(not dominated(pts[i]) for i in front)
    assert all(dominated(p) or p in [pts[i] for i in front] for p in pts)


# ---------------------------------------------------------------- activation bits, LSQ

@pytest.mark.parametrize("overrides,expect", [
    (["act_bits=1"], "2..8"),
    (["act_bits=9"], "2..8"),
    (["act_quant=minmax"], "absmax, lsq"),
])
def test_activation_config_errors(overrides, expect):
    with pytest.raises(ConfigError, match=expect):
        load_config(None, overrides)


def test_lsq_step_gradient_is_the_papers():
    """d x_q / d s: round(x/s) - x/s inside the range, +-Q outside, times the scale."""
    from bitnetlib.training.lsq import lsq_quantize
    x = torch.tensor([[0.26, -0.9, 3.0, 0.1]], dtype=torch.float64, requires_grad=True)
    s = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    q = lsq_quantize(x, s, 2)                                        # Q = 1
    gx, gs = torch.autograd.grad(q.sum(), (x, s))
    v = x.detach() / 0.5
    inside = v.abs() <= 1
    expect = torch.where(inside, v.round() - v, v.sign()).sum() / (4 * 1) ** 0.5
    assert float(gs) == pytest.approx(float(expect))
    assert torch.equal(gx, inside.double())                          # STE inside, 0 outside


@pytest.mark.parametrize("act_quant", ["absmax", "lsq"])
def test_activation_bits_limit_the_levels(act_quant):
    torch.manual_seed(0)
    layer = BitLinear(64, 4, get_quantizer("4bitsym"), act_bits=3, act_quant=act_quant)
    layer.update_clip("prop", 0.25)
    xq = layer.quantized_input(torch.randn(16, 64))
    for row in xq:
        assert len(row.unique()) <= 7                                # -3 .. 3 steps
    if act_quant == "lsq":
        assert layer.act_step.item() > 0
        assert torch.allclose(xq / layer.act_step.detach(), (xq / layer.act_step.detach()).round(),
                              atol=1e-5)


def test_lsq_run_learns_its_step_and_resumes(mnist, mnist_subset, tmp_path):
    cfg = load_config(None, ["epochs=3", "augment=true", "widths=[16]", "act_bits=4",
                             "act_quant=lsq"])
    data = mnist_subset(1000, 1000)
    full, metrics = train(cfg, tmp_path / "a", data=data, **QUIET)
    steps = [l.act_step.item() for l in quant_layers(full)]
    x = data.train_x[:256].flatten(1)
    from bitnetlib.training.lsq import lsq_init_step
    assert steps[0] != pytest.approx(float(lsq_init_step(normalize(x), 4)), rel=1e-3)
    assert metrics[-1]["test_acc"] > 50
    train(cfg, tmp_path / "b", data=data, stop_after=1, **QUIET)
    resumed, _ = train(cfg, tmp_path / "b", data=data, **QUIET)
    for (k, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    _, loaded = load_run(tmp_path / "a")
    acc = evaluate(loaded, mnist.test_x[:1000], mnist.test_y[:1000])[1]
    assert acc == pytest.approx(metrics[-1]["test_acc"])


def test_activation_steps_measure_the_clipping():
    from bitnetlib.training.probes import activation_steps
    from bitnetlib.training.models import FCModel
    torch.manual_seed(0)
    x = torch.randn(64, 1, 16, 16)
    model = FCModel([16], ["4bitsym"] * 2, act=dict(act_bits=2, act_quant="lsq"))
    for layer in quant_layers(model):
        layer.update_clip("prop", 0.25)
    model(x)                                          # sets the initial steps
    quant_layers(model)[0].act_step.data.fill_(1.0)   # Q = 1: clips |x| > 1
    first = activation_steps(model, x)[0]
    xn = normalize(x.flatten(1))
    assert first["lsq_step"] == 1.0
    assert first["clipped"] == pytest.approx(float((xn.abs() > 1).float().mean()))
    assert first["absmax_step"] == pytest.approx(float(xn.abs().amax(-1).mean()))
    plain = FCModel([16], ["4bitsym"] * 2)
    assert all(s["lsq_step"] is None and s["clipped"] == 0 for s in activation_steps(plain, x))
