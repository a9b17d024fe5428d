"""The training loop: Adam, LR schedule, per-epoch clip updates, checkpoints, metrics.

RUN_DIR layout (every file written to a temporary name, then renamed):
    config.yaml      the resolved configuration
    checkpoint.pt    model + optimizer + metrics after the last finished epoch
    metrics.json     per epoch: losses, accuracies, seconds, LR, per-layer clip/entropy
    model.pt         the final model (state dict + config), written when training ends;
                     with swa_start_epoch, the weight average (bitnetlib.swa)

A killed run restarts from checkpoint.pt. Every epoch draws its randomness (shuffle,
augmentation) from a generator seeded by (seed, epoch) and the LR is a pure function
of the epoch, so a resumed run ends with the same weights as an uninterrupted one.
"""
import functools
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from .config import TrainConfig, config_dict, make_config
from .data import AugmentParams, augment, load_mnist
from .layers import BitLinear, quant_layers
from .models import N_CLASSES, build_model
from .prune import enforce_masks, prune_model
from .quant import get_quantizer
from .stats import model_stats
from .swa import WeightAverage


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA GPU is available; use device=cpu")
    return torch.device(name)


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate for a 0-based epoch: schedule, then the optional halving."""
    if cfg.scheduler == "cosine":      # CosineAnnealingLR over all epochs, eta_min 0
        lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs))
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


@torch.no_grad()
def evaluate(model, x, y, batch: int = 10000):
    """(mean loss, accuracy in %) over all of x; no image is dropped."""
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, x.shape[0], batch):
        logits = model(x[i:i + batch])
        loss += float(F.cross_entropy(logits, y[i:i + batch], reduction="sum"))
        correct += int((logits.argmax(1) == y[i:i + batch]).sum())
    model.train()
    return loss / x.shape[0], 100.0 * correct / x.shape[0]


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


def set_linear_quant(model, name: str):
    """Give every BitLinear the weight type ``name`` (the clip is updated after)."""
    for layer in model.modules():
        if isinstance(layer, BitLinear) and layer.quantizer.name != name:
            layer.quantizer = get_quantizer(name)


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


def atomic_write(path: Path, write):
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_json(path: Path, obj):
    atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=1)))


def log_line(epoch, cfg, m) -> str:
    layers = " ".join(f"{s['clip']:.3f}/{s.get('entropy', 0):.2f}" for s in m["layers"])
    return (f"Epoch [{epoch + 1}/{cfg.epochs}], LTrain:{m['train_loss']:.6f} "
            f"ATrain: {m['train_acc']:.2f}% LTest:{m['test_loss']:.6f} "
            f"ATest: {m['test_acc']:.2f}% "
            + (f"ASWA: {m['swa_test_acc']:.2f}% " if "swa_test_acc" in m else "")
            + f"Time[s]: {m['seconds']:.2f} "
            f"w_clip/entropy[bits]: {layers}")


def distillation_loss(logits, yb, teacher_logits, alpha: float, temperature: float,
                      label_smoothing: float = 0.0):
    """(1 - alpha) CE(labels) + alpha T^2 KL(teacher_T || student_T), Hinton et al. 2015;
    plain cross entropy without a teacher. ``label_smoothing`` softens the labels' CE."""
    ce = F.cross_entropy(logits, yb, label_smoothing=label_smoothing)
    if teacher_logits is None:
        return ce
    kd = F.kl_div(F.log_softmax(logits / temperature, -1),
                  F.log_softmax(teacher_logits / temperature, -1),
                  log_target=True, reduction="batchmean")
    return (1 - alpha) * ce + alpha * temperature ** 2 * kd


def loss_and_logits(model, xb, yb, tb=None, alpha=0.0, temperature=1.0, label_smoothing=0.0):
    logits = model(xb)
    return distillation_loss(logits, yb, tb, alpha, temperature, label_smoothing), logits


def make_step_fn(cfg):
    """The forward + loss of one batch; compiled (inductor) when ``cfg.compile``."""
    fn = functools.partial(loss_and_logits, alpha=cfg.distill_alpha,
                           temperature=cfg.distill_temperature,
                           label_smoothing=cfg.label_smoothing)
    return torch.compile(fn, dynamic=False) if cfg.compile else fn


def load_teacher(cfg: TrainConfig, device):
    """The distillation teacher (a finished run's model), or None."""
    if cfg.distill_alpha <= 0:
        return None
    _, teacher = load_run(cfg.teacher, device)
    return teacher.eval()


@torch.no_grad()
def predict_logits(model, x, batch: int = 4096):
    """Logits for all of x, in eval mode and large batches."""
    outs = [model(x[i:i + batch]) for i in range(0, x.shape[0], batch)]
    return torch.cat(outs) if outs else x.new_empty((0, N_CLASSES))


def train_epoch(model, opt, x, y, order, batch_size: int, step_fn=loss_and_logits,
                progress=True, desc="epoch", teacher_logits=None, after_step=None):
    """One pass over ``x[order]`` in batches; returns (train loss, train accuracy %).
    ``after_step(model)`` runs after every optimizer step (pruning keeps its zeros)."""
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    n = order.shape[0]
    for i in tqdm(range(0, n, batch_size), desc=desc, leave=False, disable=not progress,
                  mininterval=0.5):
        idx = order[i:i + batch_size]
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        tb = None if teacher_logits is None else teacher_logits.index_select(0, idx)
        loss, logits = step_fn(model, xb, yb, tb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step(model)
        loss_sum += loss.detach() * xb.shape[0]
        correct += (logits.detach().argmax(1) == yb).sum()
    return float(loss_sum) / n, 100.0 * int(correct) / n


def make_optimizer(model, cfg):
    # no weight decay, as in the write-up; foreach keeps the step to a few kernels
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, fused=True)


def load_checkpoint(run_dir: Path, cfg: TrainConfig, model, opt, device, swa=None):
    """Restore a matching checkpoint (and the weight average, if any); returns
    (next epoch, metrics list)."""
    ckpt_path = run_dir / "checkpoint.pt"
    if not ckpt_path.exists():
        return 0, []
    try:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
    except Exception as e:
        raise RuntimeError(f"{ckpt_path}: unreadable checkpoint ({e}); delete it to start over")
    if ckpt["config"] != config_dict(cfg):
        raise RuntimeError(f"{ckpt_path} was written with a different config; use another "
                           f"--out directory or --fresh to start over")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    if swa is not None:
        swa.load_state_dict(ckpt["swa"])
    return ckpt["epoch"] + 1, ckpt["metrics"]


def initial_weights(model, cfg: TrainConfig, device):
    """Start from ``init_from``'s weights, then prune, as the config says. Runs before a
    checkpoint is restored; both steps are deterministic, so a resume matches."""
    if cfg.init_from:
        _, source = load_run(cfg.init_from, device)
        missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
        if unexpected or any(not k.endswith("weight_mask") for k in missing):
            raise RuntimeError(f"init_from {cfg.init_from}: not the same architecture "
                               f"(missing {missing}, unexpected {unexpected})")
    if cfg.prune != "none":
        prune_model(model, cfg.prune, cfg.prune_density, cfg.seed)


def swa_step(swa, model, cfg: TrainConfig, epoch: int, data):
    """Add this epoch's weights to the average; returns (averaged model with its own
    clips, its test metrics)."""
    swa.update(model)
    averaged = swa.averaged_model(model)
    update_clips(averaged, cfg, epoch, force=True)
    loss, acc = evaluate(averaged, data.test_x, data.test_y)
    return averaged.eval(), dict(swa_test_loss=loss, swa_test_acc=acc)


def train(cfg: TrainConfig, run_dir, fresh: bool = False, progress: bool = True,
          log=print, data=None, stop_after: int = -1):
    """Train (or resume) into ``run_dir``; returns (model, metrics list).

    ``stop_after`` >= 0 stops after that many epochs of this call (tests use it to
    simulate a killed run).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if data is None:
        data = load_mnist(cfg.data_root or None, device, cfg.train_subset)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    initial_weights(model, cfg, device)
    opt = make_optimizer(model, cfg)
    if fresh:
        for name in ("checkpoint.pt", "metrics.json", "model.pt"):
            (run_dir / name).unlink(missing_ok=True)
    swa = WeightAverage(model) if cfg.swa_start_epoch >= 0 else None
    start, metrics = load_checkpoint(run_dir, cfg, model, opt, device, swa)
    averaged = None
    step_fn = make_step_fn(cfg)
    teacher = load_teacher(cfg, device)
    # the clean images are the same every epoch: their teacher logits are computed once
    clean_logits = None if teacher is None else predict_logits(teacher, data.train_x)
    atomic_write(run_dir / "config.yaml",
                 lambda p: p.write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False)))
    if start:
        log(f"resuming {run_dir} at epoch {start + 1}/{cfg.epochs}")
    for epoch in range(start, cfg.epochs):
        if stop_after >= 0 and epoch - start >= stop_after:
            return model, metrics
        t0 = time.perf_counter()
        quant_now = linear_quant_at(cfg, epoch)
        if quant_now:
            set_linear_quant(model, quant_now)
        # a new type needs a new clip, even where OCTAV clips are frozen
        changed = epoch > 0 and quant_now != linear_quant_at(cfg, epoch - 1)
        update_clips(model, cfg, epoch, force=epoch == cfg.quant_switch_epoch or changed)
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, epoch)
        x, y, order = epoch_data(cfg, data, epoch_generator(cfg, epoch, device))
        t_logits = None if teacher is None else torch.cat(
            [clean_logits, predict_logits(teacher, x[clean_logits.shape[0]:])])
        train_loss, train_acc = train_epoch(model, opt, x, y, order, cfg.batch_size, step_fn,
                                            progress, f"epoch {epoch + 1}/{cfg.epochs}", t_logits,
                                            enforce_masks if cfg.prune != "none" else None)
        seconds = time.perf_counter() - t0
        test_loss, test_acc = evaluate(model, data.test_x, data.test_y)
        m = dict(epoch=epoch + 1, lr=lr_at(cfg, epoch), train_loss=train_loss,
                 train_acc=train_acc, test_loss=test_loss, test_acc=test_acc,
                 seconds=seconds, layers=model_stats(model))
        if swa is not None and epoch >= cfg.swa_start_epoch:
            averaged, swa_m = swa_step(swa, model, cfg, epoch, data)
            m.update(swa_m)
        metrics.append(m)
        log(log_line(epoch, cfg, m))
        ckpt = dict(epoch=epoch, config=config_dict(cfg), model=model.state_dict(),
                    optimizer=opt.state_dict(), metrics=metrics)
        if swa is not None:
            ckpt["swa"] = swa.state_dict()
        atomic_write(run_dir / "checkpoint.pt", lambda p: torch.save(ckpt, p))
        save_json(run_dir / "metrics.json", metrics)
    if swa is not None:                    # the saved model is the weight average
        if averaged is None:                   # resumed after the last epoch: rebuild it
            averaged = swa.averaged_model(model)
            update_clips(averaged, cfg, cfg.epochs - 1, force=True)
        model = averaged
    final = dict(config=config_dict(cfg), model=model.state_dict())
    atomic_write(run_dir / "model.pt", lambda p: torch.save(final, p))
    if metrics:
        total = sum(s["bits"] for s in metrics[-1]["layers"])
        log(f"TotalBits: {total:.0f} TotalBytes: {total / 8:.1f}")
    return model, metrics


def load_run(run_dir, device="cpu"):
    """(config, model) from a finished run's model.pt."""
    path = Path(run_dir) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train the run first (bitnet train)")
    saved = torch.load(path, map_location=device, weights_only=False)
    cfg = make_config(saved["config"], str(path))
    model = build_model(cfg).to(device)
    model.load_state_dict(saved["model"])
    model.eval()
    return cfg, model
