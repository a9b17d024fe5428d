"""Export: a trained torch model -> ``deploy.model.Exported`` (integer layers).

Reads the quantizer's integer codes (``layer.weight_codes()``, ``quantizer.int_levels``);
nothing is re-quantized here. Packing, the header and everything after live in
``bitnetlib.deploy``, which works from the ``Exported`` description alone.
"""
import numpy as np
import torch.nn as nn

from ..deploy import intmodel
from ..deploy.model import MAX_WIDTH, Exported, LayerSpec, set_layout
from ..deploy.packing import ExportError
from ..wtypes import TYPE_IDS
from .layers import BitConv2d, BitLinear, InputQuant
from .models import layer_quants
from .quant import get_quantizer

CONV_TARGET = intmodel.MAP_MAX   # conv maps fill int8 (0..127) on the calibration images
CALIB_IMAGES = 1000          # first N training images choose a CNN's conv shifts


def _int_weights(layer, name: str) -> np.ndarray:
    """(out, row) integer weights of a quantized layer, read from its codes."""
    q = layer.quantizer
    if q.name not in TYPE_IDS:
        raise ExportError(f"layer {name}: weight type {q.name!r} has no C kernel (the engine "
                          f"has {', '.join(TYPE_IDS)}); train or PTQ-quantize to one of them")
    codes = layer.weight_codes().cpu().numpy()
    w = np.asarray(q.int_levels, dtype=np.int64)[codes]
    return w.reshape(w.shape[0], -1)                                   # (out, in) or (C, 9)


def _conv_spec(m: BitConv2d, name: str, first: bool, side: int) -> LayerSpec:
    ok = (m.kernel_size == (3, 3) and m.stride == (1, 1) and m.padding == (0, 0)
          and m.dilation == (1, 1) and m.bias is None)
    depthwise = m.groups == m.in_channels == m.out_channels
    if not ok or (first and m.in_channels != 1) or (not first and not depthwise):
        raise ExportError(f"layer {name}: the engine runs a 1-channel 3x3 conv first, then "
                          f"depthwise 3x3 (stride 1, no padding, no bias); got {m}")
    return LayerSpec(name, "conv" if first else "dw", m.quantizer.name, side, m.out_channels,
                     _int_weights(m, name))


def _check_width(spec: LayerSpec):
    for what, v in (("in", spec.n_in), ("out", spec.n_out)):
        if not 0 < v <= MAX_WIDTH:
            raise ExportError(f"layer {spec.name}: {what} width {v} cannot be packed "
                              f"(the engine takes 1..{MAX_WIDTH})")


def model_layers(model: nn.Module, side: int = 16) -> list:
    """The model's layers as LayerSpecs (shifts of conv layers still 0)."""
    specs, relu_after_conv = [], True
    for name, m in model.named_children():
        if isinstance(m, BitConv2d):
            if specs and specs[-1].kind == "fc" or not relu_after_conv:
                raise ExportError(f"layer {name}: a conv must follow conv+ReLU or the input")
            specs.append(_conv_spec(m, name, not specs, side))
            side, relu_after_conv = side - 2, False
        elif isinstance(m, nn.ReLU) and specs and specs[-1].kind != "fc":
            relu_after_conv = True
        elif isinstance(m, nn.MaxPool2d) and specs and specs[-1].kind != "fc" and \
                m.kernel_size in (2, (2, 2)) and m.stride in (2, (2, 2)) and side % 2 == 0:
            specs[-1].pool, side = 1, side // 2
        elif isinstance(m, BitLinear):
            if m.relu_input != any(s.kind == "fc" for s in specs) or not relu_after_conv:
                raise ExportError(f"layer {name}: ReLU placement differs from the engine's")
            specs.append(LayerSpec(name, "fc", m.quantizer.name, m.in_features,
                                   m.out_features, _int_weights(m, name)))
        elif not isinstance(m, (nn.Flatten, InputQuant, nn.Dropout)):    # dropout: identity
            raise ExportError(f"layer {name}: the engine has no {type(m).__name__} layer")
    if not specs or specs[-1].kind != "fc":
        raise ExportError("the model must end in a BitLinear layer")
    fc0 = next(s for s in specs if s.kind == "fc")
    if specs[0].kind != "fc" and fc0.n_in != specs[0].n_out * side * side:
        raise ExportError(f"layer {fc0.name}: {fc0.n_in} inputs, but the conv layers give "
                          f"{specs[0].n_out} x {side} x {side}")
    for s in specs:
        _check_width(s)
    return specs


def calibrate_shifts(layers: list, calib_codes: np.ndarray):
    """Fixed conv shifts: layer by layer, the smallest s with rshift(max acc, s) <=
    CONV_TARGET over the calibration images (the first CALIB_IMAGES training images),
    each layer on the previous layers' calibrated maps. Larger values on other images
    saturate at MAP_MAX; with rshift's rounding, the integer steps the float model
    lacks (training does not simulate them: the maps stay float there)."""
    for i, layer in enumerate(layers):
        if layer.kind == "fc":
            break
        h = intmodel.conv_maps(layers, calib_codes, upto=i)   # (N, C or 1, S, S)
        mx = int(intmodel.conv3x3_acc(h, layer.weights).max())
        layer.shift = 0
        while int(intmodel.rshift(np.int64(mx), layer.shift)) > CONV_TARGET:
            layer.shift += 1


def export_model(model: nn.Module, calib_x=None, layout: str = "rows") -> Exported:
    """Integer layers of a trained model; a CNN needs calibration images (N, 1, 16, 16).
    ``layout='cols'``: FC weights transposed for the fast kernels (``deploy.model.set_layout``)."""
    layers = model_layers(model)
    set_layout(layers, layout)
    if layers[0].kind != "fc":
        if calib_x is None:
            raise ExportError("a CNN needs calibration images to choose its conv shifts")
        calibrate_shifts(layers, intmodel.input_codes(calib_x.cpu().numpy()))
    first = layers[0]
    input_len = first.n_in if first.kind == "fc" else first.n_in ** 2
    exp = Exported(layers, input_len, layers[-1].n_out)
    exp.model_id = exp.fingerprint()
    return exp


def check_deployable(cfg, source="run") -> None:
    """Refuse training options the engine does not implement (research-plan chapters),
    instead of exporting a header that computes something else than the trained model."""
    if cfg.model == "fc_moe":       # several networks: bitnetlib.training.export_moe
        raise ExportError(f"{source}: model=fc_moe is a mixture of networks; export it with "
                          f"bitnetlib.training.export_moe.export_moe (bn_run_moe)")
    if cfg.norm != "rmsnorm":
        raise ExportError(f"{source}: norm={cfg.norm!r}, but the engine implements only "
                          f"RMSNorm (ShiftNorm); retrain with norm: rmsnorm to deploy")
    if cfg.act_quant != "absmax" or cfg.act_bits != 8:
        raise ExportError(f"{source}: act_quant={cfg.act_quant!r}, act_bits={cfg.act_bits}, "
                          f"but the engine uses 8-bit activations scaled by ShiftNorm "
                          f"(act_quant: absmax, act_bits: 8)")
    if cfg.selfcomp != "none":
        raise ExportError(f"{source}: selfcomp={cfg.selfcomp!r}, but the engine runs only its "
                          f"fixed weight types, not learned bit depths; train with selfcomp: none")
    no_zero = sorted({q for q in layer_quants(cfg) if 0.0 not in
                      [float(v) for v in get_quantizer(q).levels]})
    if cfg.prune != "none" and no_zero:
        raise ExportError(f"{source}: prune={cfg.prune!r}, but weight type(s) {no_zero} have "
                          f"no zero level: pruned weights would be exported as the smallest non-zero level")
