"""Seconds per augmented epoch (60k clean + 60k augmented images) for the write-up's
FC recipe (4bitsym 256-64-64-64-10, batch 128) or the reference CNN (configs/cnn64.yaml),
and the accuracy per epoch of the batched tensor pipeline beside the write-up's
per-image PIL pipeline.

    python benchmarks/epoch_time.py                      # timing, eager and compiled
    python benchmarks/epoch_time.py --model cnn64        # the 64-channel CNN
    python benchmarks/epoch_time.py --compare-epochs 10  # + accuracy vs the PIL pipeline
    python benchmarks/epoch_time.py --curve 10 --threads 1   # seconds and test accuracy
                                     # per epoch of the compiled recipe, via train()
    python benchmarks/epoch_time.py --model cnn64 --curve 10 --eager   # the same, eager

Timing runs ``train`` itself (into a temporary directory), so whatever the training loop
does (the next epoch's augmentation drawn in the background, say) is timed as a run
has it: an epoch's time is the ``seconds`` of its metrics, everything but the test
evaluation and the checkpoint: clip update, augmentation (or waiting for it), shuffling
and the optimizer steps. The first epoch (compilation) is not timed. To compare two
versions of the code, run this script with PYTHONPATH set to each, back to back.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bitnetlib.training.config import load_config
from bitnetlib.training.data import MEAN, STD, load_mnist, read_idx, resolve_data_root
from bitnetlib.training.models import build_model
from bitnetlib.training.rundir import resolve_device
from bitnetlib.training.schedule import epoch_data, epoch_generator, lr_at, update_clips
from bitnetlib.training.train import (evaluate, make_optimizer, make_step_fn, train,
                                      train_epoch)

RECIPE = ["quant=4bitsym", "widths=[64, 64, 64]", "batch_size=128", "augment=true",
          "epochs=60", "lr=0.001", "scheduler=cosine"]
MODELS = {"fc": (None, RECIPE),
          "cnn64": (str(Path(__file__).resolve().parents[1] / "configs" / "cnn64.yaml"), [])}


def pil_epoch_data(images28_uint8, labels, clean_x, seed):
    """The write-up's pipeline: torchvision transforms on one PIL image at a time."""
    from PIL import Image
    from torchvision import transforms
    tf = transforms.Compose([
        transforms.RandomRotation(degrees=10),
        transforms.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        transforms.Resize((16, 16)),
        transforms.ToTensor(),
        transforms.Normalize((MEAN,), (STD,)),
    ])
    torch.manual_seed(seed)
    aug = torch.stack([tf(Image.fromarray(a)) for a in images28_uint8])
    x = torch.cat([clean_x, aug])
    y = torch.cat([labels, labels])
    return x, y, torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))


def run(cfg, data, epochs, pipeline="tensor", raw=None):
    """Train ``epochs`` epochs; returns (seconds per epoch list, test accuracy list)."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    opt = make_optimizer(model, cfg)
    step_fn = make_step_fn(cfg)
    secs, accs = [], []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        update_clips(model, cfg, epoch)
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, epoch)
        if pipeline == "tensor":
            x, y, order = epoch_data(cfg, data, epoch_generator(cfg, epoch, device))
        else:
            x, y, order = pil_epoch_data(raw, data.train_y.cpu(), data.train_x.cpu(), epoch)
            x, y, order = x.to(device), y.to(device), order.to(device)
        train_epoch(model, opt, x, y, order, cfg.batch_size, step_fn, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        secs.append(time.perf_counter() - t0)
        accs.append(evaluate(model, data.test_x, data.test_y)[1])
    return secs, accs


def run_train(cfg, data, epochs):
    """Train the first ``epochs`` epochs of ``cfg`` with ``train``; returns (seconds per
    epoch, test accuracy per epoch)."""
    with tempfile.TemporaryDirectory() as tmp:
        _, metrics = train(cfg, tmp, progress=False, log=lambda s: None, data=data,
                           stop_after=epochs)
    return [m["seconds"] for m in metrics], [m["test_acc"] for m in metrics]


def timing(model, data, device, epochs):
    """Median seconds per epoch, eager and compiled, first epoch not timed."""
    path, over = MODELS[model]
    print(f"seconds per augmented epoch (120,000 images), {model}, batch 128")
    for compiled in (False, True):
        cfg = load_config(path, over + [f"compile={compiled}", f"device={device.type}"])
        secs, accs = run_train(cfg, data, epochs + 1)
        print(f"  {'compiled' if compiled else 'eager   '}: median "
              f"{statistics.median(secs[1:]):.2f} s  (each: {' '.join(f'{s:.2f}' for s in secs[1:])}"
              f"; first epoch {secs[0]:.1f} s); test accuracy % per epoch: "
              + " ".join(f"{a:.2f}" for a in accs))


def curve(model, data, device, epochs, compiled=True):
    """Seconds and test accuracy per epoch of the model's config, compiled or eager."""
    path, over = MODELS[model]
    cfg = load_config(path, over + [f"compile={compiled}", f"device={device.type}"])
    secs, accs = run_train(cfg, data, epochs)
    print(f"{model} ({'compiled' if cfg.compile else 'eager'}): epoch, seconds, test accuracy %")
    for e, (s, a) in enumerate(zip(secs, accs), 1):
        print(f"{e:5d}  {s:7.2f}  {a:6.2f}")
    print(f"median seconds (epochs 2..): {statistics.median(secs[1:] or secs):.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4, help="epochs per timing run")
    ap.add_argument("--compare-epochs", type=int, default=0,
                    help="also train this many epochs with the PIL pipeline and compare")
    ap.add_argument("--model", choices=sorted(MODELS), default="fc")
    ap.add_argument("--curve", type=int, default=0,
                    help="only train this many epochs of the config and print seconds and "
                         "test accuracy per epoch")
    ap.add_argument("--eager", action="store_true",
                    help="--curve: train eagerly (compile=false) instead of compiled")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_mnist(device=device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    if args.curve:
        curve(args.model, data, device, args.curve, not args.eager)
        return
    timing(args.model, data, device, args.epochs)
    if args.compare_epochs:
        raw = read_idx(resolve_data_root() / "MNIST" / "raw" / "train-images-idx3-ubyte")
        cfg = load_config(None, RECIPE + ["compile=true", f"device={device.type}"])
        t_secs, t_acc = run(cfg, data, args.compare_epochs)
        p_secs, p_acc = run(cfg, data, args.compare_epochs, "pil", np.ascontiguousarray(raw))
        print("test accuracy per epoch: batched tensor pipeline vs per-image PIL pipeline")
        print("epoch  tensor%  PIL%   tensor s  PIL s")
        for e, (a, b, s1, s2) in enumerate(zip(t_acc, p_acc, t_secs, p_secs), 1):
            print(f"{e:5d}  {a:6.2f}  {b:6.2f}  {s1:8.2f}  {s2:6.2f}")
        print(f"mean   {np.mean(t_acc):6.2f}  {np.mean(p_acc):6.2f}")


if __name__ == "__main__":
    main()
