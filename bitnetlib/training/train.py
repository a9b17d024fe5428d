"""The training loop: Adam, LR schedule, per-epoch clip updates, checkpoints, metrics.

The run directory's files are described in ``rundir``; the per-epoch schedules in
``schedule``. A killed run restarts from checkpoint.pt. Every epoch draws its
randomness (shuffle, augmentation) from a generator seeded by (seed, epoch) and the LR
is a pure function of the epoch, so a resumed run ends with the same weights as an
uninterrupted one.
"""
import functools
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from .config import TrainConfig, config_dict
from .data import load_mnist
from .distill import (attach_teacher, distillation_loss, make_feature_step,  # noqa: F401
                      teacher_targets, uses_teacher)
from .models import N_CLASSES, build_model
from .moe import make_moe_step
from .prune import enforce_masks, prune_model
from .rundir import (atomic_write, inspect_run, load_checkpoint, load_run, make_run_dir,
                     model_from, remove_run_files, remove_stale_temps, resolve_device,
                     run_lock, save_json)
from .selfcomp import param_groups, selfcomp_step
from .schedule import (act_bits_at, epoch_data, epoch_generator, linear_quant_at, lr_at,
                       set_act_bits, set_linear_quant, update_clips)
from .speed import EpochPrefetch, keep_freed_memory
from .stats import model_stats
from .swa import WeightAverage
from .switchable import accuracy_per_type, make_switchable_step


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


def log_line(epoch, cfg, m) -> str:
    layers = " ".join(f"{s['clip']:.3f}/{s.get('entropy', 0):.2f}" for s in m["layers"])
    return (f"Epoch [{epoch + 1}/{cfg.epochs}], LTrain:{m['train_loss']:.6f} "
            f"ATrain: {m['train_acc']:.2f}% LTest:{m['test_loss']:.6f} "
            f"ATest: {m['test_acc']:.2f}% "
            + (f"ASWA: {m['swa_test_acc']:.2f}% " if "swa_test_acc" in m else "")
            + f"Time[s]: {m['seconds']:.2f} "
            f"w_clip/entropy[bits]: {layers}")


def loss_and_logits(model, xb, yb, tb=None, alpha=0.0, temperature=1.0, label_smoothing=0.0):
    logits = model(xb)
    return distillation_loss(logits, yb, tb, alpha, temperature, label_smoothing), logits


def make_step_fn(cfg):
    """The forward + loss of one batch; compiled (inductor) when ``cfg.compile``."""
    fn = make_feature_step(cfg) if cfg.distill_feature_weight > 0 else functools.partial(
        loss_and_logits, alpha=cfg.distill_alpha, temperature=cfg.distill_temperature,
        label_smoothing=cfg.label_smoothing)
    if cfg.model == "fc_moe":        # hard routing and the load-balancing loss (training.moe)
        fn = make_moe_step(cfg, functools.partial(
            distillation_loss, alpha=cfg.distill_alpha, temperature=cfg.distill_temperature,
            label_smoothing=cfg.label_smoothing))
    if not cfg.compile:
        return fn
    # one process may train many models (a chapter's sweep, a Dask worker): past the
    # default 8 recompilations torch would run the step uncompiled, so that a run's
    # arithmetic depended on what the process trained before it
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 1024)
    return torch.compile(fn, dynamic=False)


def load_teacher(cfg: TrainConfig, device):
    """The distillation teacher (a finished run's model), or None."""
    if not uses_teacher(cfg):
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
    n = order.shape[0]
    rows = x.view(n, -1)              # gathering 2-D rows is several times faster
    params = [p for group in opt.param_groups for p in group["params"]]
    losses = torch.empty(-(-n // batch_size), device=x.device)
    preds = torch.empty(n, dtype=torch.long, device=x.device)
    for k, i in enumerate(tqdm(range(0, n, batch_size), desc=desc, leave=False,
                               disable=not progress, mininterval=0.5)):
        idx = order[i:i + batch_size]
        xb, yb = rows.index_select(0, idx).view((-1, *x.shape[1:])), y.index_select(0, idx)
        tb = None if teacher_logits is None else teacher_logits.index_select(0, idx)
        loss, logits = step_fn(model, xb, yb, tb)
        for p in params:                  # opt.zero_grad(set_to_none=True), minus overhead
            p.grad = None
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step(model)
        losses[k] = loss.detach()
        torch.argmax(logits.detach(), 1, out=preds[i:i + batch_size])
    correct = int((preds == y.index_select(0, order)).sum())
    return running_loss_sum(losses, n, batch_size) / n, 100.0 * correct / n


def running_loss_sum(losses, n: int, batch_size: int) -> float:
    """sum of loss * batch size, accumulated in float32 batch after batch (the same
    roundings as adding to a float32 tensor every step)."""
    total = np.float32(0)
    for k, loss in enumerate(losses.tolist()):
        size = np.float32(min(batch_size, n - k * batch_size))
        total = np.float32(total + np.float32(np.float32(loss) * size))
    return float(total)


def make_optimizer(model, cfg):
    # no weight decay, as in the write-up; foreach keeps the step to a few kernels
    # (self-compression: bit depths and exponents in a group of their own, see selfcomp)
    return torch.optim.Adam(param_groups(model, cfg.selfcomp_lr_mult), lr=cfg.lr, fused=True)


def initial_weights(model, cfg: TrainConfig, device):
    """Start from ``init_from``'s weights, then prune, as the config says. Runs before a
    checkpoint is restored; both steps are deterministic, so a resume matches."""
    fresh = {k: v.clone() for k, v in model.state_dict().items()} if cfg.prune_rewind else None
    if cfg.init_from:
        _, source = load_run(cfg.init_from, device)
        missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
        if unexpected or any(not k.endswith("weight_mask") for k in missing):
            raise RuntimeError(f"init_from {cfg.init_from}: not the same architecture "
                               f"(missing {missing}, unexpected {unexpected})")
    if cfg.prune != "none":
        prune_model(model, cfg.prune, cfg.prune_density, cfg.seed)
    if fresh is not None:            # lottery ticket: the trained masks on the initial weights
        masks = {k: v for k, v in model.state_dict().items() if k.endswith("weight_mask")}
        model.load_state_dict({**fresh, **masks}, strict=False)
        enforce_masks(model)


def swa_step(swa, model, cfg: TrainConfig, epoch: int, data):
    """Add this epoch's weights to the average; returns (averaged model with its own
    clips, its test metrics)."""
    swa.update(model)
    averaged = swa.averaged_model(model)
    update_clips(averaged, cfg, epoch, force=True)
    loss, acc = evaluate(averaged, data.test_x, data.test_y)
    return averaged.eval(), dict(swa_test_loss=loss, swa_test_acc=acc)


def prepare(cfg: TrainConfig, run_dir: Path, state, device, data):
    """Model, optimizer, schedules and data of a run, restored from its checkpoint
    (``state``: ``rundir.inspect_run``'s)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    keep_freed_memory()
    if data is None:
        data = load_mnist(cfg.data_root or None, device, cfg.train_subset)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    initial_weights(model, cfg, device)
    opt = make_optimizer(model, cfg)
    swa = WeightAverage(model) if cfg.swa_start_epoch >= 0 else None
    if state.ckpt is not None:
        load_checkpoint(state.ckpt, model, opt, swa)
    teacher = load_teacher(cfg, device)
    if teacher is not None:
        attach_teacher(cfg, model, teacher)       # width checks, frozen classifier
    # the clean images are the same every epoch: their teacher logits are computed once
    clean_logits = None if teacher is None else teacher_targets(cfg, teacher, data.train_x)
    return SimpleNamespace(cfg=cfg, run_dir=run_dir, device=device, data=data, model=model,
                           opt=opt, swa=swa, averaged=None, start=state.start,
                           metrics=state.metrics,
                           teacher=teacher, clean_logits=clean_logits,
                           step_fn=make_switchable_step(cfg) if cfg.switch_types
                           else make_step_fn(cfg) if cfg.selfcomp == "none"
                           else selfcomp_step(make_step_fn(cfg), cfg.selfcomp_gamma))


def set_epoch_quant(R, epoch: int):
    """This epoch's weight types, clips and learning rate."""
    cfg = R.cfg
    quant_now = linear_quant_at(cfg, epoch)
    if quant_now:
        set_linear_quant(R.model, quant_now)
    if cfg.act_cycle:
        set_act_bits(R.model, act_bits_at(cfg, epoch))
    # a new type needs a new clip, even where OCTAV clips are frozen
    changed = epoch > 0 and quant_now != linear_quant_at(cfg, epoch - 1)
    update_clips(R.model, cfg, epoch, force=epoch == cfg.quant_switch_epoch or changed)
    for group in R.opt.param_groups:
        group["lr"] = lr_at(cfg, epoch) * group.get("lr_mult", 1.0)


def run_epoch(R, epoch: int, progress: bool) -> dict:
    """Train one epoch, evaluate, average (SWA); returns the epoch's metrics."""
    cfg, t0 = R.cfg, time.perf_counter()
    set_epoch_quant(R, epoch)
    x, y, order = R.prefetch.get(epoch) if getattr(R, "prefetch", None) else \
        epoch_data(cfg, R.data, epoch_generator(cfg, epoch, R.device))
    t_logits = None if R.teacher is None else torch.cat(
        [R.clean_logits, teacher_targets(cfg, R.teacher, x[R.clean_logits.shape[0]:])])
    train_loss, train_acc = train_epoch(R.model, R.opt, x, y, order, cfg.batch_size, R.step_fn,
                                        progress, f"epoch {epoch + 1}/{cfg.epochs}", t_logits,
                                        enforce_masks if cfg.prune != "none" else None)
    seconds = time.perf_counter() - t0
    test_loss, test_acc = evaluate(R.model, R.data.test_x, R.data.test_y)
    m = dict(epoch=epoch + 1, lr=lr_at(cfg, epoch), train_loss=train_loss,
             train_acc=train_acc, test_loss=test_loss, test_acc=test_acc,
             seconds=seconds, layers=model_stats(R.model))
    if cfg.switch_types:
        m["switch_test_acc"] = accuracy_per_type(R.model, cfg.switch_types, cfg.quant,
                                                 R.data.test_x, R.data.test_y, evaluate)
    if R.swa is not None and epoch >= cfg.swa_start_epoch:
        R.averaged, swa_m = swa_step(R.swa, R.model, cfg, epoch, R.data)
        m.update(swa_m)
    return m


def save_epoch(R, epoch: int):
    """Checkpoint and metrics after a finished epoch (atomic writes)."""
    ckpt = dict(epoch=epoch, config=config_dict(R.cfg), model=R.model.state_dict(),
                optimizer=R.opt.state_dict(), metrics=R.metrics)
    if R.swa is not None:
        ckpt["swa"] = R.swa.state_dict()
    atomic_write(R.run_dir / "checkpoint.pt", lambda p: torch.save(ckpt, p))
    save_json(R.run_dir / "metrics.json", R.metrics)


def finish(R, log):
    """Write model.pt (the weight average with SWA); returns the saved model."""
    model = R.model
    if R.swa is not None:                      # the saved model is the weight average
        if R.averaged is None:                 # resumed after the last epoch: rebuild it
            R.averaged = R.swa.averaged_model(model)
            update_clips(R.averaged, R.cfg, R.cfg.epochs - 1, force=True)
        model = R.averaged
    final = dict(config=config_dict(R.cfg), model=model.state_dict())
    atomic_write(R.run_dir / "model.pt", lambda p: torch.save(final, p))
    if R.metrics:
        total = sum(s["bits"] for s in R.metrics[-1]["layers"])
        log(f"TotalBits: {total:.0f} TotalBytes: {total / 8:.1f}")
    return model


def train(cfg: TrainConfig, run_dir, fresh: bool = False, progress: bool = True,
          log=print, data=None, stop_after: int = -1):
    """Train (or resume) into ``run_dir``; returns (model, metrics list).

    The directory is locked while training (``rundir.run_lock``); ``fresh`` removes its
    run files first, else they must be of this config (``rundir.inspect_run``). A
    finished run is left as it is. ``stop_after`` >= 0 stops after that many epochs of
    this call (tests use it to simulate a killed run).
    """
    run_dir = Path(run_dir)
    make_run_dir(run_dir)
    with run_lock(run_dir):
        remove_stale_temps(run_dir)
        if fresh:
            remove_run_files(run_dir)
        device = resolve_device(cfg.device)
        state = inspect_run(run_dir, cfg, device, log)
        if state.finished:
            log(f"{run_dir}: already finished ({cfg.epochs} epochs); nothing to do "
                f"(--fresh trains it again)")
            return model_from(state.saved, run_dir / "model.pt", device)[1], state.metrics
        return train_epochs(prepare(cfg, run_dir, state, device, data), progress, log,
                            stop_after)


def train_epochs(R, progress: bool, log, stop_after: int):
    """The epochs from R.start on, a checkpoint after each, then model.pt."""
    cfg, run_dir = R.cfg, R.run_dir
    atomic_write(run_dir / "config.yaml",
                 lambda p: p.write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False)))
    if R.start:
        log(f"resuming {run_dir} at epoch {R.start + 1}/{cfg.epochs}" if R.start < cfg.epochs
            else f"{run_dir}: all {cfg.epochs} epochs trained; writing model.pt")
    last = cfg.epochs if stop_after < 0 else min(cfg.epochs, R.start + stop_after)
    R.prefetch = EpochPrefetch(cfg, R.data, R.device, last)
    try:
        for epoch in range(R.start, last):
            R.metrics.append(run_epoch(R, epoch, progress))
            log(log_line(epoch, cfg, R.metrics[-1]))
            save_epoch(R, epoch)
    finally:
        R.prefetch.close()
    if last < cfg.epochs:                     # stopped early (stop_after)
        return R.model, R.metrics
    return finish(R, log), R.metrics
