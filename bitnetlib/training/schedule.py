"""What changes from epoch to epoch: learning rate, randomness, data, weight types, clips.

Each is a pure function of the configuration and the 0-based epoch, so a resumed run
ends with the same weights as an uninterrupted one.
"""
import math

import torch

from .config import TrainConfig
from .data import AugmentParams, augment
from .layers import BitLinear, quant_layers
from .fracbits import quantizer_for


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate for a 0-based epoch: schedule, then the optional halving."""
    if cfg.scheduler == "cosine":      # CosineAnnealingLR over all epochs, eta_min 0
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
    elif cfg.scheduler == "linear":    # straight down to 0 at the end, like the cosine
        lr = cfg.lr * (1 - epoch / cfg.epochs)
    elif cfg.scheduler == "step":
        lr = cfg.lr * cfg.step_gamma ** (epoch // cfg.step_size)
    else:
        lr = cfg.lr
    if 0 <= cfg.halve_lr_epoch <= epoch:
        lr *= 0.5
    return lr


def epoch_generator(cfg: TrainConfig, epoch: int, device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed * 1_000_003 + epoch + 1)
    return gen


def epoch_data(cfg: TrainConfig, data, gen):
    """(x, y, order) for one epoch: clean images plus as many augmented ones, and a
    random permutation to visit them in (batches gather rows; nothing is copied)."""
    x, y = data.train_x, data.train_y
    if cfg.augment:
        params = AugmentParams(cfg.aug_rotation, cfg.aug_affine_rotation, cfg.aug_translate,
                               cfg.aug_scale_min, cfg.aug_scale_max, cfg.aug_elastic,
                               cfg.aug_elastic_grid)
        x = torch.cat([x, augment(data.train28, params, gen)])
        y = torch.cat([y, y])
    return x, y, torch.randperm(x.shape[0], generator=gen, device=x.device)


def cycle_quant(types: list, period: int, epoch: int) -> str:
    """The type of a 0-based epoch in cyclic precision training (Fu et al. 2021): within
    each cycle of ``period`` epochs the precision rises along a half cosine from
    ``types[0]`` to ``types[-1]`` (CPT's schedule, per epoch and over a list of types).

    >>> [cycle_quant(["2bitsym", "4bitsym"], 4, e) for e in range(6)]
    ['2bitsym', '2bitsym', '4bitsym', '4bitsym', '2bitsym', '2bitsym']
    >>> [cycle_quant(["2bitsym", "4bitsym", "8bit"], 4, e) for e in range(4)]
    ['2bitsym', '2bitsym', '4bitsym', '8bit']
    >>> [cycle_quant(["2bitsym", "4bitsym", "8bit"], 3, e) for e in range(3)]
    ['2bitsym', '4bitsym', '8bit']
    >>> [cycle_quant([2, 2.5, 3, 3.5, 4], 6, e) for e in range(6)]   # bit widths (fracbits)
    [2, 2, 2.5, 3, 3.5, 4]
    """
    rise = 0.5 * (1 - math.cos(math.pi * (epoch % period) / period))    # 0 .. < 1
    # halves round up; the epsilon absorbs cos rounding (cos(pi/3) = 0.5000000000000001)
    return types[math.floor(rise * (len(types) - 1) + 0.5 + 1e-9)]


def linear_quant_at(cfg: TrainConfig, epoch: int) -> str:
    """Weight type of the linear layers in a 0-based epoch: ``start_quant``, or the
    ``quant_cycle`` type, before ``quant_switch_epoch``; ``quant`` from then on; "" when
    the config has no schedule (the model keeps its types, ``quant_per_layer`` included).
    A pure function of the epoch, so a resumed run switches at the same points."""
    if not (cfg.start_quant or cfg.quant_cycle):
        return ""
    if epoch >= cfg.quant_switch_epoch:
        return cfg.quant
    if cfg.start_quant:
        return cfg.start_quant
    return cycle_quant(cfg.quant_cycle, cfg.quant_cycle_period, epoch)


def act_bits_at(cfg: TrainConfig, epoch: int) -> int:
    """Activation bits of a 0-based epoch: the ``act_cycle`` width before
    ``quant_switch_epoch`` (cyclic precision of the activations), else ``act_bits``."""
    if cfg.act_cycle and epoch < cfg.quant_switch_epoch:
        return cycle_quant(cfg.act_cycle, cfg.quant_cycle_period, epoch)
    return cfg.act_bits


def set_act_bits(model, bits: int):
    """Give every BitLinear ``bits``-bit input activations."""
    for layer in model.modules():
        if isinstance(layer, BitLinear):
            layer.act_bits = bits


def set_linear_quant(model, name):
    """Give every BitLinear the weight type ``name``, or the level grid of a real-valued
    bit width (training.fracbits); the clip is updated after."""
    q = quantizer_for(name)
    for layer in model.modules():
        if isinstance(layer, BitLinear) and layer.quantizer.name != q.name:
            layer.quantizer = quantizer_for(name)


@torch.no_grad()
def update_clips(model, cfg: TrainConfig, epoch: int, force: bool = False):
    """Per-epoch clips; ``force`` (a quant switch) updates even frozen OCTAV clips."""
    frozen = cfg.clip == "octav" and 0 <= cfg.octav_freeze_epoch <= epoch
    if frozen and epoch > 0 and not force:
        return
    for layer in quant_layers(model):
        if layer.is_quantized:
            layer.update_clip(cfg.clip, cfg.quantscale, cfg.octav_iters)
            if cfg.clip_update == "step":
                layer.step_quantscale = cfg.quantscale
