"""Switchable precision: one set of weights trained for several weight types at once
(the switchable-precision report, shared/seeds/002; Jin et al. 2020, Du et al. 2020).

Every batch runs the model once per type in ``switch_types``, widest (most bits) first:
the widest learns from the labels; each narrower one learns from the widest by
self-distillation, KL(widest_T || narrow_T) on the logits at temperature T plus
``switch_feature_weight`` times the mean squared difference of the last hidden
layer's (normalised) features. One backward pass over the sum updates the shared
weights. The prop clip is the same for every type (mean |w| / quantscale), so one
clip per layer serves them all. The saved model uses ``quant``, one of the types. The
step runs eagerly (``compile`` is not applied to it): the type changes inside a step.
"""
import torch
import torch.nn.functional as F

from .layers import BitLinear
from .quant import get_quantizer
from .schedule import set_linear_quant


def by_width(types) -> list:
    """The types widest first.

    >>> by_width(["2bitsym", "8bit", "4bitsym"])
    ['8bit', '4bitsym', '2bitsym']
    """
    return sorted(types, key=lambda q: -get_quantizer(q).bits)


def _features(model, xb):
    """(logits, input of the last BitLinear) of one forward pass."""
    last = [m for m in model.modules() if isinstance(m, BitLinear)][-1]
    seen = {}
    handle = last.register_forward_pre_hook(lambda m, args: seen.setdefault("x", args[0]))
    try:
        logits = model(xb)
    finally:
        handle.remove()
    return logits, F.layer_norm(seen["x"], seen["x"].shape[-1:])


def make_switchable_step(cfg):
    """A step function (model, xb, yb, tb) -> (loss, logits of ``cfg.quant``)."""
    types, T, beta = by_width(cfg.switch_types), cfg.distill_temperature, cfg.switch_feature_weight

    def step(model, xb, yb, tb=None):
        total, main_logits, ref = 0.0, None, None
        for q in types:
            set_linear_quant(model, q)
            logits, feats = _features(model, xb)
            if ref is None:                              # the widest: from the labels
                loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
                ref = (logits.detach(), feats.detach())
            else:                                        # the others: from the widest
                loss = T * T * F.kl_div(F.log_softmax(logits / T, -1),
                                        F.log_softmax(ref[0] / T, -1), log_target=True,
                                        reduction="batchmean")
                loss = loss + beta * F.mse_loss(feats, ref[1])
            total = total + loss
            if q == cfg.quant:
                main_logits = logits
        set_linear_quant(model, cfg.quant)
        return total, main_logits
    return step


@torch.no_grad()
def accuracy_per_type(model, types, main: str, x, y, evaluate) -> dict:
    """{type: test accuracy %} of the shared weights at every type (then back to main)."""
    out = {}
    for q in types:
        set_linear_quant(model, q)
        out[q] = evaluate(model, x, y)[1]
    set_linear_quant(model, main)
    return out
