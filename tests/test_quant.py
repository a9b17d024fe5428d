
import pytest
import torch

import numpy as np

from bitnetlib.deploy import intmodel as I
from bitnetlib.training.layers import BitLinear, quantize_act
from bitnetlib.wtypes import NF4_LEVELS
from bitnetlib.training.quant import (QUANTIZERS, choose_clip, get_quantizer, octav_clip,
                                      quantize_activations)
from bitnetlib.training.stats import entropy_bits

TYPES = [n for n in QUANTIZERS if n != "None"]

EXPECTED_LEVELS = {
    "Binary": [-1, 1],
    "Ternary": [-1, 0, 1],
    "2bitsym": [-1.5, -0.5, 0.5, 1.5],
    "4bitsym": [k + 0.5 for k in range(-8, 8)],
    "4bit": list(range(-8, 8)),
    "8bit": list(range(-128, 128)),
    "FP130": [-(2 ** e) for e in range(7, -1, -1)] + [2 ** e for e in range(8)],
    "NF4": list(NF4_LEVELS),
    "4p6": list(range(-7, 8)),
}


def sweep(clip, n=20001):
    return torch.linspace(-3 * clip, 3 * clip, n)


@pytest.mark.parametrize("name", TYPES)
def test_exact_level_set(name):
    """A dense sweep well past the clip produces exactly the type's level set."""
    q, clip = get_quantizer(name), 2.0
    values = torch.unique(q.fake_quant(sweep(clip), clip)) / q.step(clip)
    assert values.tolist() == pytest.approx(EXPECTED_LEVELS[name], abs=1e-6)


@pytest.mark.parametrize("name", TYPES)
def test_codes_dequant_match_fake_quant(name):
    q, w = get_quantizer(name), torch.randn(4096, generator=torch.Generator().manual_seed(1))
    clip = q.prop_clip(w, 0.25)
    codes = q.codes(w, clip)
    assert codes.dtype == torch.int64 and codes.min() >= 0 and codes.max() < q.n_levels
    assert torch.equal(q.dequant(codes, clip), q.fake_quant(w, clip))


@pytest.mark.parametrize("name", ["Ternary", "2bitsym", "4bitsym", "4bit", "8bit", "FP130", "NF4",
                                  "4p6"])
def test_clipping_saturates_at_extreme_levels(name):
    q, clip = get_quantizer(name), 1.0
    big = torch.tensor([-50.0, -3.0, 3.0, 50.0])
    out = q.fake_quant(big, clip) / q.step(clip)
    lv = EXPECTED_LEVELS[name]
    assert out.tolist() == pytest.approx([lv[0], lv[0], lv[-1], lv[-1]])


@pytest.mark.parametrize("name", TYPES)
def test_rounds_to_nearest_level(name):
    """Every value maps to a level at minimal distance (ties either way)."""
    q, clip = get_quantizer(name), 1.5
    w = sweep(clip, 5001)
    if name == "Binary":      # a sign about the mean, not a nearest-level rounding
        return
    levels = torch.tensor(EXPECTED_LEVELS[name], dtype=torch.float32) * q.step(clip)
    got = q.fake_quant(w, clip)
    best = (w[:, None] - levels[None]).abs().min(1).values
    assert torch.allclose((w - got).abs(), best, atol=1e-5)


def test_binary_is_sign_about_mean():
    q = get_quantizer("Binary")
    w = torch.tensor([0.1, 0.2, 0.3, 1.4])          # mean 0.5
    out = q.fake_quant(w, q.prop_clip(w, 0.25))
    assert out.tolist() == pytest.approx([-0.5, -0.5, -0.5, 0.5])


def test_int_levels():
    assert get_quantizer("4bitsym").int_levels == tuple(range(-15, 16, 2))
    assert get_quantizer("2bitsym").int_levels == (-3, -1, 1, 3)
    assert get_quantizer("FP130").int_levels[-1] == 128
    assert get_quantizer("NF4").int_levels[0] == -127 and get_quantizer("NF4").int_levels[7] == 0


def test_unknown_type_lists_valid_choices():
    with pytest.raises(ValueError, match="4bitsym"):
        get_quantizer("3bit")


def test_activation_quant_is_int8_absmax():
    x = torch.randn(8, 256)
    xq = quantize_activations(x)
    scale = 127 / x.abs().amax(1, keepdim=True)
    codes = xq * scale
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.abs().max() <= 127 + 1e-4
    assert torch.allclose(codes.abs().amax(1), torch.full((8,), 127.0))


def test_4p6_layer_limits_its_activations_like_the_integer_model():
    """A 4p6 BitLinear quantizes its input to int8 absmax codes, then brings them into
    -16..16 by the integer model's rule (intmodel.act_limit): 33 levels at most."""
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(3))
    layer = BitLinear(256, 8, get_quantizer("4p6"))
    xq = layer.quantized_input(x)
    xn = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-8)
    scale = 127 / xn.abs().amax(1, keepdim=True)
    codes = (xn * scale).round()
    want = I.act_limit(codes.numpy().astype(np.int64), 16)          # shift 3: codes / 8
    assert np.allclose((xq * scale / 8).numpy(), want, atol=1e-4)
    assert set(np.unique(want)) <= set(range(-16, 17)) and np.abs(want).max() == 16


@pytest.mark.parametrize("name", ["4bitsym", "Ternary", "FP130", "4p6", "None"])
def test_ste_gradients_pass_straight_through(name):
    """d loss / d w equals the gradient of the same loss w.r.t. the quantized weight,
    and d loss / d x equals the RMSNorm gradient with the activation quantizer
    treated as the identity."""
    torch.manual_seed(0)
    layer = BitLinear(32, 8, get_quantizer(name), relu_input=False)
    layer.update_clip("prop", 0.25)
    x = torch.randn(16, 32, requires_grad=True)
    g = torch.randn(16, 8)
    (layer(x) * g).sum().backward()

    wq = layer.quantized_weight().clone().requires_grad_(True)
    x2 = x.detach().clone().requires_grad_(True)
    xn = x2 * torch.rsqrt(x2.pow(2).mean(-1, keepdim=True) + 1e-8)
    xq = xn + (quantize_act(xn, 8, layer.quantizer.act_max) - xn).detach() if name != "None" else xn
    (torch.nn.functional.linear(xq, wq) * g).sum().backward()
    assert torch.allclose(layer.weight.grad, wq.grad, atol=1e-5)
    assert torch.allclose(x.grad, x2.grad, atol=1e-5)


def test_relu_input_gradient_is_masked():
    torch.manual_seed(0)
    layer = BitLinear(16, 4, get_quantizer("4bitsym"), relu_input=True)
    layer.update_clip("prop", 0.25)
    x = torch.randn(8, 16, requires_grad=True)
    layer(x).sum().backward()
    assert torch.all(x.grad[x.detach() < 0] == 0)
    assert torch.any(x.grad[x.detach() > 0] != 0)


@pytest.mark.parametrize("levels", [3, 4, 16, 256])
def test_octav_matches_brute_force_on_gaussian(levels):
    """OCTAV's fixed point lands on the brute-force argmin of J(s) to within 5 % of s
    and 1 % of J (the recursion drops the s^2 p(s) term of dJ/ds, which matters only
    for very few levels), and to within 0.5 % of s from 4 bits up."""
    w = torch.randn(200_000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = w.abs()
    grid = torch.linspace(0.5, 6.0, 5501, dtype=torch.float64)   # in sigmas, step 0.001

    def mse(s):
        over = a > s
        return (~over).sum() * s ** 2 / (3 * levels ** 2) + ((a - s)[over] ** 2).sum()

    costs = torch.stack([mse(s) for s in grid])
    brute = float(grid[int(costs.argmin())])
    found = float(octav_clip(w, levels, iters=30))
    assert found == pytest.approx(brute, rel=0.05 if levels < 16 else 0.005)
    assert float(mse(torch.tensor(found, dtype=torch.float64))) <= 1.01 * float(costs.min())


def test_octav_for_nonuniform_type_minimises_true_mse():
    q = get_quantizer("NF4")
    w = torch.randn(20000, generator=torch.Generator().manual_seed(4))
    s = choose_clip(w, q, "octav", 0.25)
    err = lambda c: float((q.fake_quant(w, c) - w).pow(2).mean())
    assert err(s) <= err(s * 1.1) and err(s) <= err(s * 0.9)


def test_entropy():
    assert entropy_bits(torch.ones(16)) == pytest.approx(4.0)
    assert entropy_bits(torch.tensor([5, 0, 0, 0])) == pytest.approx(0.0)
    assert entropy_bits(torch.tensor([1, 1, 2])) == pytest.approx(1.5)
