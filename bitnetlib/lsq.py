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


@torch.no_grad()
def activation_steps(model, x) -> list:
    """Per BitLinear over the batch ``x``: the mean per-row absmax step (max|x| / Q),
    the learned LSQ step (None for absmax layers) and the fraction of the normalized
    inputs beyond the LSQ grid's edge Q * step (absmax clips none by construction)."""
    from .layers import normalize                   # layers imports this module
    from .sparsity import bitlinear_inputs
    seen = [(layer, normalize((a.clamp_min(0) if layer.relu_input else a).flatten(1), layer.norm))
            for layer, a in bitlinear_inputs(model, x)]
    out = []
    for layer, xn in seen:
        qmax = 2 ** (layer.act_bits - 1) - 1
        lsq = layer.act_step.item() if layer.act_quant == "lsq" else None
        out.append(dict(absmax_step=float((xn.abs().amax(-1) / qmax).mean()), lsq_step=lsq,
                        clipped=float((xn.abs() > qmax * lsq).float().mean()) if lsq else 0.0))
    return out
