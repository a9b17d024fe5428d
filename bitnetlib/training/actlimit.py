"""Limited activations (weight types with ``act_max`` < 127, wtypes.py: 4p6).

A layer of such a type first brings its int8 activation codes into -L..L (L its
``act_max``) by the signed ShiftNorm rule, per row: s = the smallest s >= 0 with
(max|c| >> s) <= L, then c -> sign(c) * min(L, rshift(|c|, s)), rshift rounding half
up. The same rule is ``deploy/intmodel.py act_limit`` and C ``bn_act_limit``; here it
acts on the fake-quantized model's codes (absmax, quant.quantize_activations), so a
127-code row (every absmax row) takes s = 3 for L = 16: the network input, -127..127,
becomes -16..16 exactly as in the engine.

>>> limit_codes(torch.tensor([[127.0, -127.0, 4.0, -5.0, 0.0]]), 16)[0].tolist()
[[16.0, -16.0, 1.0, -1.0, 0.0]]
>>> quantize_limited(torch.tensor([[1.0, -0.5, 0.25]]), 16).tolist()
[[1.0078740119934082, -0.5039370059967041, 0.25196850299835205]]
"""
import torch


def limit_codes(c: torch.Tensor, limit: int):
    """Integer-valued codes (rows) -> (codes in -limit..limit, per-row shift s)."""
    m = c.abs().amax(-1, keepdim=True)                                  # (B, 1)
    # floor(m / 2^k) falls with k: the count of k with floor(m / 2^k) > L is the least s
    s = sum((torch.floor(m / 2 ** k) > limit).float() for k in range(8))
    p = torch.pow(2.0, s)
    r = torch.floor((c.abs() + torch.floor(p / 2)) / p).clamp_max(limit)
    return torch.sign(c) * r, s


def quantize_limited(x: torch.Tensor, limit: int) -> torch.Tensor:
    """Per-row absmax int8 codes (as ``quantize_activations``), limited to -limit..limit,
    back to values: code * 2^s / scale."""
    scale = 127 / x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-5)
    c, s = limit_codes((x * scale).round().clamp(-128, 127), limit)
    return c * torch.pow(2.0, s) / scale
