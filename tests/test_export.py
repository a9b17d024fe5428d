"""Export: packing round trips for every type, header contents, clear errors."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from bitnetlib.training.layers import BitLinear, quant_layers
from bitnetlib.training.models import CNNModel, FCModel
from bitnetlib.training.quant import get_quantizer
from bitnetlib.deploy import model as dmodel
from bitnetlib.deploy import packing
from bitnetlib.training import export as texport
from bitnetlib import wtypes

TYPES = list(wtypes.TYPE_IDS)


def with_clips(model):
    torch.manual_seed(0)
    for layer in quant_layers(model):
        if layer.is_quantized:
            layer.update_clip("prop", 0.25)
    return model


@settings(max_examples=60, deadline=None)
@given(wtype=st.sampled_from(TYPES), out=st.integers(1, 5), n=st.integers(1, 300),
       seed=st.integers(0, 2 ** 31))
def test_pack_unpack_round_trip(wtype, out, n, seed):
    values = np.array(packing.field_values(wtype))
    w = np.random.default_rng(seed).choice(values, size=(out, n))
    words = packing.pack(w, wtype)
    assert words.dtype == np.uint32
    assert words.shape == (out, -(-n // packing.per_word(wtype)))
    assert np.array_equal(packing.unpack(words, n, wtype), w)


def test_field_order_msb_first_and_padding_is_zero():
    # first weight in the top bits; unused fields of the last word are zero bits
    assert packing.pack(np.array([[1] + [-1] * 31]), "Binary")[0, 0] == 0x80000000
    assert packing.pack(np.array([[-3, 3]]), "2bitsym")[0, 0] == 0x30000000
    assert packing.pack(np.array([[-128, 127, 0]]), "8bit")[0, 0] == 0x00FF8000
    assert packing.pack(np.array([[-1, 64]]), "FP130")[0, 0] == 0x86000000    # sign 1 e 0, e 6
    assert packing.pack(np.array([[-127, 127]]), "NF4")[0, 0] == 0x0F000000
    assert packing.pack(np.array([[-7, 7, 0]]), "4p6")[0, 0] == 0x0E700000     # f = w + 7
    # 15 levels in 4-bit fields: the bytes of a 4-bit type, never a field 15
    assert packing.packed_bytes(64, 256, "4p6") == packing.packed_bytes(64, 256, "4bitsym")
    with pytest.raises(packing.ExportError, match=r"integer weights \[8\]"):
        packing.pack(np.array([[8]]), "4p6")


def test_every_quantizer_level_is_encodable():
    """The engine's value table covers every integer level the quantizers produce."""
    for wtype in TYPES:
        levels = get_quantizer(wtype).int_levels
        assert sorted(levels) == sorted(packing.field_values(wtype)), wtype


def test_export_reads_the_quantizer_codes():
    model = with_clips(FCModel([24], ["FP130", "Ternary"]))
    layers = texport.model_layers(model)
    for spec, layer in zip(layers, quant_layers(model)):
        levels = np.array(layer.quantizer.int_levels)
        assert np.array_equal(spec.weights, levels[layer.weight_codes().numpy()])
        assert np.array_equal(packing.unpack(spec.packed, spec.n_in, spec.wtype), spec.weights)


def test_ternary_density_of_the_12k_net():
    """256-128-128-112-10: 5 trits per byte, rows padded to whole words (112 -> 6 words)."""
    exp = texport.export_model(with_clips(FCModel([128, 128, 112], ["Ternary"] * 4)))
    stats = dmodel.packed_stats(exp)
    n = sum(s["n_weights"] for s in stats)
    total = sum(s["packed_bytes"] for s in stats)
    assert n == 64608
    assert [s["bits_per_weight"] for s in stats][3] == pytest.approx(32 * 6 / 112)
    assert 1.6 <= 8 * total / n < 1.7          # measured: 1.626 bits per weight


def test_header_text_and_atomic_write(tmp_path):
    exp = texport.export_model(with_clips(FCModel([16], ["4bitsym", "8bit"])))
    path = dmodel.write_header(exp, tmp_path / "m.h", "test")
    text = path.read_text()
    assert not (tmp_path / "m.h.tmp").exists()
    assert dmodel.read_header_id(path) == exp.model_id == exp.fingerprint()
    assert f"static const bn_model {dmodel.symbol(exp)}" in text
    assert "first weight" in text and "2f - 15" in text          # the packing contract
    assert text.count("static const uint32_t") == 2


def test_model_id_changes_with_any_weight():
    model = with_clips(FCModel([16], ["4bit", "4bit"]))
    a = texport.export_model(model)
    with torch.no_grad():
        model[1].weight[0, 0] = -model[1].weight[0, 0] + 1.0
    assert texport.export_model(model).model_id != a.model_id


def test_cnn_export_chooses_shifts_from_calibration(mnist):
    model = with_clips(CNNModel(4, [8], ["2bitsym", "4bitsym"]))
    with pytest.raises(packing.ExportError, match="calibration"):
        texport.export_model(model)
    exp = texport.export_model(model, mnist.train_x[:200])
    kinds = [(l.kind, l.pool) for l in exp.layers]
    assert kinds == [("conv", 0), ("dw", 1), ("dw", 1), ("fc", 0), ("fc", 0)]
    assert exp.input_len == 256 and exp.layers[3].n_in == 16
    from bitnetlib.deploy import intmodel
    maps = intmodel.conv_features(exp.layers, intmodel.input_codes(mnist.train_x[:200]))
    assert 0 < maps.max() <= texport.CONV_TARGET


def test_errors_name_the_layer():
    with pytest.raises(packing.ExportError, match=r"layer 2: weight type 'None'"):
        texport.export_model(with_clips(FCModel([8], ["4bit", "None"])))
    with pytest.raises(packing.ExportError, match="no Tanh layer"):
        texport.export_model(nn.Sequential(nn.Flatten(), nn.Tanh(),
                                     BitLinear(256, 10, get_quantizer("4bit"))))
    wide = nn.Sequential(BitLinear(70000, 2, get_quantizer("Binary")))
    with pytest.raises(packing.ExportError, match=r"layer 0: in width 70000 cannot be packed"):
        texport.export_model(with_clips(wide))
    with pytest.raises(packing.ExportError, match="not levels of the type"):
        packing.pack(np.array([[0, 1]]), "4bitsym")
    with pytest.raises(packing.ExportError, match="no C kernel"):
        packing.field_values("float")


def test_read_header_id_rejects_other_files(tmp_path):
    (tmp_path / "x.h").write_text("int x;\n")
    with pytest.raises(packing.ExportError, match="not a header written by"):
        dmodel.read_header_id(tmp_path / "x.h")


@pytest.mark.parametrize("overrides, key", [
    ({"norm": "layernorm"}, "norm='layernorm'"),
    ({"act_quant": "lsq"}, "act_quant='lsq'"),
    ({"act_bits": 4}, "act_bits=4"),
    ({"prune": "l1", "prune_density": 0.5}, "no zero level"),
])
def test_options_the_engine_lacks_are_refused(overrides, key):
    from bitnetlib.training.config import make_config
    cfg = make_config({"quant": "4bitsym", **overrides})
    with pytest.raises(packing.ExportError, match=key.replace("(", r"\(")):
        texport.check_deployable(cfg, "runs/x")


def test_deployable_options_pass():
    from bitnetlib.training.config import make_config
    texport.check_deployable(make_config({"quant": "4bitsym"}))
    texport.check_deployable(make_config({"quant": "Ternary", "prune": "l1", "prune_density": 0.5}))
    texport.check_deployable(make_config({"quant": "4bitsym", "start_quant": "8bit",
                                    "quant_switch_epoch": 5, "epochs": 10}))
