"""What a model's layers see on a batch: zero activations and activation steps.

Zero activations are what the MCU's zero-skipping kernels save.

The FC kernels of the C engine (c_engine/bn_kernels*.c) skip every zero input of a
layer: the work of a layer is (non-zero inputs) x (output features) input-weight
pairs, not in x out. RMSNorm keeps ReLU's zeros zero; LayerNorm subtracts the mean
first, so almost no hidden input stays zero. These functions measure it on the
training-side model (BitLinear.quantized_input: [ReLU], norm, 8-bit activations).
"""
import torch

from .layers import BitLinear, normalize


@torch.no_grad()
def bitlinear_inputs(model, x) -> list:
    """(layer, raw input) of every BitLinear for the batch ``x``, in forward order, with
    the model in eval mode (its mode is restored after)."""
    seen = []
    hook = lambda layer, args: seen.append((layer, args[0]))
    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, BitLinear)]
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


def linear_inputs(model, x) -> list:
    """The quantized input of every BitLinear for the batch ``x``, in forward order:
    a list of (B, in_features) tensors."""
    return [layer.quantized_input(a) for layer, a in bitlinear_inputs(model, x)]


def input_zero_fractions(model, x) -> list:
    """Per BitLinear: fraction of its (quantized) inputs that are exactly zero over x."""
    return [int((a == 0).sum()) / a.numel() for a in linear_inputs(model, x)]


def nonzero_pairs(model, x) -> list:
    """Per BitLinear: mean over the images of x of (non-zero inputs) x (out features),
    the input-weight pairs a zero-skipping kernel computes."""
    layers = [m for m in model.modules() if isinstance(m, BitLinear)]
    return [float((a != 0).sum(1).double().mean()) * layer.out_features
            for a, layer in zip(linear_inputs(model, x), layers)]


@torch.no_grad()
def activation_steps(model, x) -> list:
    """Per BitLinear over the batch ``x``: the mean per-row absmax step (max|x| / Q),
    the learned LSQ step (None for absmax layers) and the fraction of the normalized
    inputs beyond the LSQ grid's edge Q * step (absmax clips none by construction)."""
    seen = [(layer, normalize((a.clamp_min(0) if layer.relu_input else a).flatten(1), layer.norm))
            for layer, a in bitlinear_inputs(model, x)]
    out = []
    for layer, xn in seen:
        qmax = 2 ** (layer.act_bits - 1) - 1
        lsq = layer.act_step.item() if layer.act_quant == "lsq" else None
        out.append(dict(absmax_step=float((xn.abs().amax(-1) / qmax).mean()), lsq_step=lsq,
                        clipped=float((xn.abs() > qmax * lsq).float().mean()) if lsq else 0.0))
    return out
