"""Cycle table of the CH32V003 firmware (bitnet mcu) for every shipped config x kernel.

    python benchmarks/mcu_cycles.py [--runs DIR] [--images N] [--timed N] [--only NAME ...]

For each configs/*.yaml it uses DIR/<config name> when that holds a trained run
(model.pt), else trains one quickly there (epochs=1, train_subset=3000, no
augmentation): cycles depend on activation sparsity, so the table says how each model
was trained. Columns: flash and SRAM bytes (SRAM = static + measured stack peak), fits
the CH32V003 (16 KB / 2 KB), mean instructions and model cycles, ms at 48 MHz,
mismatches vs the host C engine (prediction or any accumulator).
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUICK = ["epochs=1", "train_subset=3000", "augment=false", "compile=false", "threads=1"]


def ensure_run(cfg_path: Path, runs: Path, log) -> tuple:
    import yaml
    from bitnetlib.config import load_config
    from bitnetlib.train import train
    run = runs / cfg_path.stem
    if (run / "model.pt").exists():
        c = yaml.safe_load((run / "config.yaml").read_text())
        how = f"trained run ({c.get('epochs')} epochs, augment={c.get('augment')})"
        return run, how
    log(f"training {cfg_path.stem} quickly into {run}")
    train(load_config(cfg_path, QUICK), run, progress=False, log=lambda s: None)
    return run, "quick (1 epoch, 3000 images)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=str(ROOT / "runs" / "mcu"))
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--timed", type=int, default=None)
    ap.add_argument("--only", nargs="*", default=None, help="config names (stems)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    from bitnetlib.data import load_mnist
    from bitnetlib.mcu import McuError, mcu_run
    data = load_mnist(None)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, file=sys.stderr, flush=True)
    rows = []
    for cfg in sorted((ROOT / "configs").glob("*.yaml")):
        if args.only and cfg.stem not in args.only:
            continue
        run, how = ensure_run(cfg, runs, log)
        for kernel in ("baseline", "fast"):
            try:
                r = mcu_run(run, kernel=kernel, images=args.images, timed=args.timed,
                            data=data, log=log)
            except (McuError, Exception) as e:  # noqa: B014 (emulator faults too)
                r = dict(kernel=kernel, error=(str(e).splitlines() or [repr(e)])[-1])
            r.update(config=cfg.stem, trained=how)
            rows.append(r)
            log(json.dumps({k: r.get(k) for k in ("config", "kernel", "cycles_mean", "error")}))
    head = (f"{'config':26} {'kernel':8} {'flash':>6} {'sram':>6} {'fits':>4} {'instr':>9} "
            f"{'cycles':>9} {'ms@48':>6} {'mism':>4} {'acc%':>6}  trained")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['config']:26} {r['kernel']:8} error: {r['error']}")
            continue
        print(f"{r['config']:26} {r['kernel']:8} {r['flash_bytes']:6d} {r['ram_bytes']:6d} "
              f"{'yes' if r['fits_ch32v003'] else 'NO':>4} {r['instructions_mean']:9.0f} "
              f"{r['cycles_mean']:9.0f} {r['ms_at_48mhz']:6.2f} {r['mismatch_vs_host']:4d} "
              f"{r['accuracy']:6.2f}  {r['trained']}")
    print(f"(means over {args.images} MNIST test images; cycles from the QingKe V2A model "
          f"of ../shared/mcu-measurement.md, estimates)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
