"""Post-training quantization: quantize a trained model's weights after the fact.

The float (or differently quantized) weights are copied into the same architecture
built with another weight type, and each layer's clip is chosen once, by the same
``prop`` or OCTAV rule training uses. Activations get the same 8-bit absmax
quantization as in QAT, so the two are compared like for like.
"""
import copy
import dataclasses

import torch

from .layers import quant_layers
from .models import build_model


@torch.no_grad()
def post_training_quantize(model, cfg, quant: str, clip: str = "prop",
                           quantscale: float = 0.25, conv_quant: str = ""):
    """A copy of ``model`` (built from ``cfg``) with every linear layer's weights
    quantized to ``quant`` (and conv layers to ``conv_quant`` when given)."""
    target = dataclasses.replace(cfg, quant=quant, quant_per_layer=[],
                                 conv_quant=conv_quant or cfg.conv_quant)
    qmodel = build_model(target).to(next(model.parameters()).device)
    state = {k: v for k, v in copy.deepcopy(model.state_dict()).items()
             if not k.endswith(".clip")}
    qmodel.load_state_dict(state, strict=False)
    for layer in quant_layers(qmodel):
        if layer.is_quantized:
            layer.update_clip(clip, quantscale)
    return qmodel.eval()
