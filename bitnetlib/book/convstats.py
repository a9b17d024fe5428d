"""Chapter 16: what the fast conv kernel sees, and where the emulated CNN's cycles go.

The fast conv kernel (c_engine/bn_conv.c, bn_conv_rv32e.S) scatters every non-zero
input to its 9 taps; an input below 16 costs one table lookup per tap, a larger one two
(its 4-bit digits). ``conv_inputs`` counts both kinds per conv layer from the integer
model, the same integers the firmware reads: the first layer reads the image (centred
on its smallest pixel) once per channel, the others one map per channel.

>>> import numpy as np
>>> from types import SimpleNamespace as L
>>> conv = L(kind="conv", n_in=4, weights=np.ones((2, 9), dtype=np.int64), shift=0, pool=0)
>>> img = np.array([[0] * 15 + [20]])          # one 4x4 image: 15 background pixels, one 20
>>> [(r["nonzero"], r["one_digit"]) for r in conv_inputs([conv, L(kind="fc")], img)]
[(2.0, 0.0)]
"""
import numpy as np

from ..deploy import intmodel


def conv_inputs(layers, x_codes) -> list:
    """Per conv layer, mean per image over the (N, pixels) int8 codes ``x_codes``: the
    inputs the kernel reads over all channels, how many are not zero, and how many of
    those are below 16 (one lookup per tap)."""
    side = layers[0].n_in
    x = np.asarray(x_codes, dtype=np.int64)
    h = x.reshape(len(x), 1, side, side)                                 # (N, 1, S, S)
    cur = h - x.min(axis=1)[:, None, None, None]                         # centred image
    rows = []
    for i, layer in enumerate(layers):
        if layer.kind == "fc":
            break
        reads = layer.weights.shape[0] if cur.shape[1] == 1 else 1       # image: per channel
        nz = (cur != 0).sum(axis=(1, 2, 3)) * reads                      # (N,)
        small = ((cur > 0) & (cur < 16)).sum(axis=(1, 2, 3)) * reads
        rows.append(dict(layer=i, inputs=float(cur[0].size * reads), nonzero=float(nz.mean()),
                         one_digit=float(small.mean())))
        h = intmodel.conv3x3_relu(h, layer.weights, layer.shift)
        if layer.pool:
            h = intmodel.maxpool2(h)
        cur = h
    return rows


def profile_rows(mcu_result: dict, top: int = 8) -> list:
    """The ``top`` functions of an emulated run by cycles (``profile_mean``: per image,
    instructions and cycles), with their share of the image's cycles."""
    total = mcu_result["cycles_mean"]
    prof = sorted(mcu_result["profile_mean"].items(), key=lambda kv: -kv[1][1])
    return [dict(function=name, instructions=f"{ins:,.0f}", cycles=f"{cyc:,.0f}",
                 share=f"{100 * cyc / total:.1f} %") for name, (ins, cyc) in prof[:top]]
