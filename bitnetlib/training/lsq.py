"""Learned step size quantization (LSQ, Esser et al. 2020) for the activations.

The default activation quantizer (``quant.quantize_activations``) scales every row by
its own absmax. LSQ instead learns one step size per layer: x_q = round(clip(x / s,
-Q, Q)) * s, with the straight-through estimator for round and the gradient of s
scaled by 1 / sqrt(features * Q) (the paper's step-size gradient scale). The levels
are the same signed ones as absmax (-Q .. Q, Q = 2^(bits-1) - 1), so the two differ
only in how the scale is chosen.
"""
import math

import torch


def grad_scale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` in the forward pass, its gradient times ``scale`` in the backward pass."""
    return (x - x * scale).detach() + x * scale


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward."""
    return x + (x.round() - x).detach()


def lsq_quantize(x: torch.Tensor, step: torch.Tensor, bits: int) -> torch.Tensor:
    """Fake-quantize ``x`` to the signed ``bits``-bit grid of spacing ``step``.

    >>> lsq_quantize(torch.tensor([[0.26, -0.9, 3.0]]), torch.tensor(0.5), 2).tolist()
    [[0.5, -0.5, 0.5]]
    """
    qmax = 2 ** (bits - 1) - 1
    s = grad_scale(step, 1.0 / math.sqrt(x.shape[-1] * qmax))
    return round_ste((x / s).clamp(-qmax, qmax)) * s


def lsq_init_step(x: torch.Tensor, bits: int) -> torch.Tensor:
    """The paper's initial step, 2 mean|x| / sqrt(Q), from a first batch."""
    return 2 * x.detach().abs().mean() / math.sqrt(2 ** (bits - 1) - 1)
