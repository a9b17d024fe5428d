"""The integer reference model: its rules, and how it relates to the fake-quant model."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bitnetlib.deploy import intmodel as I
from bitnetlib.training.layers import quant_layers
from bitnetlib.training.models import FCModel
from bitnetlib.training.quant import quantize_activations
from bitnetlib.training import export as texport


def with_clips(model):
    torch.manual_seed(0)
    for layer in quant_layers(model):
        layer.update_clip("prop", 0.25)
    return model


def test_shiftnorm_rules():
    out, shift = I.shiftnorm_relu(np.array([
        [3, 1, -9, 3],                 # small max: never scaled up; argmax is the first 3
        [255, 254, 1, 0],              # shift 1: (255 + 1) >> 1 = 128 saturates to 127
        [-5, -1, -7, -2],              # all negative: shift 0, all zero
        [2 ** 31 - 1, 3, 2 ** 23, 0],  # int32 max: shift 24
        [130, 129, 2, 3],              # shift 1, half rounds up: 65, 65, 1, 2
    ]))
    assert out.tolist() == [[3, 1, 0, 3], [127, 127, 1, 0], [0, 0, 0, 0], [127, 0, 1, 0],
                            [65, 65, 1, 2]]
    assert shift.tolist() == [0, 1, 0, 24, 1]


def test_rshift_rounds_half_up():
    assert I.rshift(np.array([0, 1, 2, 3, 4, 5, 6, 7]), 2).tolist() == [0, 0, 1, 1, 1, 1, 2, 2]
    assert I.rshift(np.array([5]), 0).tolist() == [5]


def test_input_codes_equal_the_fake_quant_input(mnist):
    x = mnist.test_x[:500]
    codes = I.input_codes(x)
    flat = x.flatten(1)
    scale = 127 / flat.abs().amax(1, keepdim=True)
    assert torch.equal(torch.from_numpy(codes).float() / scale, quantize_activations(flat))
    assert np.abs(codes).max() == 127


def test_conv_matches_torch_on_integers():
    rng = np.random.default_rng(0)
    x = rng.integers(-127, 128, size=(3, 4, 9, 9))
    w = rng.integers(-128, 128, size=(4, 9))
    ref = F.conv2d(torch.tensor(x, dtype=torch.float64),
                   torch.tensor(w, dtype=torch.float64).view(4, 1, 3, 3), groups=4)
    assert np.array_equal(I.conv3x3_acc(x, w), ref.numpy().astype(np.int64))
    out = I.conv3x3_relu(x * 300, w, 3)
    assert out.min() == 0 and out.max() == I.MAP_MAX          # ReLU and saturation


def test_maxpool():
    x = np.arange(16).reshape(1, 1, 4, 4)
    assert I.maxpool2(x).tolist() == [[[[5, 7], [13, 15]]]]


def test_fc_layer_is_the_fake_quant_layer_scaled(mnist):
    """First layer: int acc * (weight step / int_scale) * (max|x| / 127) equals the
    BitLinear output up to float rounding; RMSNorm cancels in the absmax scale."""
    model = with_clips(FCModel([32], ["4bitsym", "4bit"]))
    exp = texport.export_model(model)
    x = mnist.test_x[:200]
    acc = I.fc(I.input_codes(x), exp.layers[0].weights)
    layer = model[1]
    xf = x.flatten(1)
    xn = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-8)
    scale = (layer.quantizer.step(layer.clip) / layer.quantizer.int_scale *
             xn.abs().amax(1, keepdim=True) / 127)
    with torch.no_grad():
        ref = layer(xf)
    assert torch.allclose(torch.from_numpy(acc).float() * scale, ref, rtol=1e-4, atol=1e-4)


def test_overflow_is_an_error():
    with pytest.raises(OverflowError, match="leaves int32"):
        I.check_int32(np.array([2 ** 31]), "test")
