"""The integer reference model: exactly what the C engine computes, in numpy.

It is the specification the C engine (c_engine/, contract in c_engine/bitnet.h) is
tested against, accumulator by accumulator. It runs on the integer weights of an
``Exported`` model (bitnetlib/export.py), never on float weights.

    input      16x16 image -> int8 per image by absmax: round(x * 127 / max|x|)
    FC layer   acc = sum w * a  (int32; w the integer weight of the code)
    fused      argmax(acc) (before ReLU, first max wins); shift = smallest s >= 0
               with (max >> s) <= 127; a = acc <= 0 ? 0 : min(127, rshift(acc, s))
    conv       acc = sum w * x over 3x3; x = acc <= 0 ? 0 : min(127, rshift(acc, shift))
               with a fixed shift per conv layer (chosen at export); 2x2 max-pool;
               the int8 maps (0..MAP_MAX) of the last conv layer are the first FC
               layer's input (ShiftNorm on them is the identity)
    rshift(v, s) = (v + (1 << s >> 1)) >> s     (round half up, v > 0)
    limit      a layer whose type has act_max L < 127 (wtypes: 4p6) first brings its
               activations into -L..L: s = smallest s >= 0 with (max|a| >> s) <= L,
               a -> sign(a) * min(L, rshift(|a|, s)), per image (``act_limit``)

>>> shiftnorm_relu(np.array([[300, -5, 127, 255]]))[0].tolist()   # max 300 -> shift 2
[[75, 0, 32, 64]]
>>> shiftnorm_relu(np.array([[3, 1]]))[0].tolist()                # small: never scaled up
[[3, 1]]
>>> act_limit(np.array([[127, -127, 12, -5, 0], [16, 3, 0, 0, 0]]), 16).tolist()
[[16, -16, 2, -1, 0], [16, 3, 0, 0, 0]]
"""
from dataclasses import dataclass, field

import numpy as np

from ..wtypes import TYPES

ACT_MAX = 127
MAP_MAX = 127          # conv maps are int8, 0..MAP_MAX (bitnet.h BN_MAP_MAX)
INT32_MAX = 2 ** 31 - 1


class InputError(ValueError):
    """Images the integer model and the engine cannot take (non-finite pixels)."""


def check_finite(flat: np.ndarray) -> np.ndarray:
    """``flat`` (N, pixels) float32, or an InputError naming the non-finite images."""
    bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    if bad.size:
        raise InputError(f"{bad.size} of {len(flat)} input images have non-finite pixels "
                         f"(NaN or inf, or beyond float32), the first at index {bad[0]}")
    return flat


def input_codes(x) -> np.ndarray:
    """(N, ...) float images -> (N, n_pixels) int64 codes in -127..127, per-image absmax.

    The same float32 arithmetic as ``quantize_activations`` (torch): torch computes
    ``127 / m`` as ``reciprocal(m) * 127``, so the codes equal what the fake-quantized
    model's input quantizer produces for the same tensor (a CPU tensor or an array).
    Non-finite pixels are an InputError; N = 0 gives (0, n_pixels).
    """
    a = np.asarray(x, dtype=np.float32)
    flat = check_finite(a.reshape(len(a), int(np.prod(a.shape[1:]))))   # (N, pixels)
    amax = np.maximum(np.abs(flat).max(axis=1, keepdims=True), np.float32(1e-5))
    scale = (np.float32(1) / amax) * np.float32(127)
    return np.clip(np.round(flat * scale), -128, 127).astype(np.int64)


def rshift(v: np.ndarray, s) -> np.ndarray:
    """Rounding right shift (round half up) of non-negative int64 values."""
    s = np.asarray(s, dtype=np.int64)
    return (v + ((np.int64(1) << s) >> 1)) >> s


def shiftnorm_relu(acc: np.ndarray):
    """(N, n) int64 accumulators -> ((N, n) int64 activations 0..127, (N,) shifts)."""
    mx = acc.max(axis=1)                                               # (N,)
    shift = np.zeros(len(acc), dtype=np.int64)
    while True:
        grow = (mx > 0) & ((mx >> shift) > ACT_MAX)
        if not grow.any():
            break
        shift += grow
    out = rshift(np.maximum(acc, 0), shift[:, None])
    return np.minimum(out, ACT_MAX), shift


def act_limit(act: np.ndarray, limit: int) -> np.ndarray:
    """(N, n) int64 activations -> the same in -limit..limit (the signed ShiftNorm rule,
    see above; a no-op for limit >= 127)."""
    if limit >= ACT_MAX:
        return act
    mx = np.abs(act).max(axis=1)                                       # (N,)
    shift = np.zeros(len(act), dtype=np.int64)
    while ((mx >> shift) > limit).any():
        shift += (mx >> shift) > limit
    return np.sign(act) * np.minimum(rshift(np.abs(act), shift[:, None]), limit)


def absmax_relu(acc: np.ndarray):
    """The fake-quant model's rule in integer form, for comparison only (the engine
    never runs it): ReLU, then round(acc * 127 / max) per row, ties to even like
    torch.round. RMSNorm cancels in the absmax scale."""
    a = np.maximum(acc, 0).astype(np.float64)
    mx = np.maximum(a.max(axis=1, keepdims=True), 1e-30)                 # (N, 1)
    return np.rint(a * (127 / mx)).astype(np.int64), None


def check_int32(acc: np.ndarray, what: str) -> np.ndarray:
    if acc.size and np.abs(acc).max() > INT32_MAX:
        raise OverflowError(f"{what}: an accumulator leaves int32 ({np.abs(acc).max()})")
    return acc


def fc(act: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(N, in) x (out, in) -> (N, out) int64. Float64 BLAS is exact here: every
    partial sum is an integer below 2^53 (|w|, |a| <= 128, in <= 65535)."""
    return np.rint(act.astype(np.float64) @ w.astype(np.float64).T).astype(np.int64)


def conv3x3_acc(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (N, C or 1, H, W), w (C, 9) -> (N, C, H-2, W-2) int64: valid 3x3 conv per
    channel (depthwise; a 1-channel input is broadcast to every filter)."""
    n, _, h, wd = x.shape
    acc = np.zeros((n, w.shape[0], h - 2, wd - 2), dtype=np.int64)
    for k in range(9):
        dy, dx = divmod(k, 3)
        acc += w[None, :, k, None, None] * x[:, :, dy:dy + h - 2, dx:dx + wd - 2]
    return check_int32(acc, "conv")


def conv3x3_relu(x: np.ndarray, w: np.ndarray, shift: int) -> np.ndarray:
    """conv3x3_acc, then ReLU, rshift and saturation to 0..MAP_MAX."""
    acc = conv3x3_acc(x, w)
    return np.minimum(rshift(np.maximum(acc, 0), shift), MAP_MAX)


def maxpool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))  # (N, C, H/2, W/2)


def conv_maps(layers, x: np.ndarray, upto=None) -> np.ndarray:
    """The conv prefix (or its first ``upto`` layers) on (N, pixels) codes -> (N, C, h, w)."""
    side = layers[0].n_in
    h = x.reshape(len(x), 1, side, side)                               # (N, 1, S, S)
    for layer in layers[:upto]:
        if layer.kind == "fc":
            break
        h = conv3x3_relu(h, layer.weights, layer.shift)
        if layer.pool:
            h = maxpool2(h)
    return h


def conv_features(layers, x: np.ndarray) -> np.ndarray:
    """(N, pixels) codes -> (N, C*h*w) conv features, channel-major like torch's flatten."""
    return conv_maps(layers, x).reshape(len(x), -1)


@dataclass
class IntResult:
    pred: np.ndarray                        # (N,) argmax of the output accumulators
    logits: np.ndarray                      # (N, n_classes) int64
    trace: list = field(default_factory=list)   # per FC layer (N, out); CNN: features first


def run(exported, x_codes: np.ndarray, batch: int = 1000, norm: str = "shift") -> IntResult:
    """The integer model on (N, input_len) int codes; batched to bound memory.
    ``norm='absmax'`` swaps ShiftNorm for the float model's absmax rule (analysis only)."""
    rule = {"shift": shiftnorm_relu, "absmax": absmax_relu}[norm]
    if len(x_codes) == 0:
        return IntResult(np.zeros(0, np.int64), np.zeros((0, exported.n_classes), np.int64))
    parts = [_run(exported.layers, x_codes[i:i + batch], rule)
             for i in range(0, len(x_codes), batch)]
    logits = np.concatenate([p[-1] for p in parts])
    trace = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
    return IntResult(logits.argmax(axis=1), logits, trace)


def _run(layers, x: np.ndarray, rule=shiftnorm_relu) -> list:
    trace = []
    act = x.astype(np.int64)
    if layers[0].kind != "fc":
        feat = conv_features(layers, act)
        trace.append(feat)
        act, _ = rule(feat)
    fcs = [l for l in layers if l.kind == "fc"]
    for i, layer in enumerate(fcs):
        act = act_limit(act, TYPES[layer.wtype].act_max)
        acc = check_int32(fc(act, layer.weights), f"layer {layer.name}")
        trace.append(acc)
        if i + 1 < len(fcs):
            act, _ = rule(acc)
    return trace
