"""Cycle table of the CH32V003 firmware (bitnet mcu) for every shipped config x kernel.

    python benchmarks/mcu_cycles.py [--runs DIR] [--run NAME=RUN_DIR ...] [--images N]
                                    [--timed N] [--slow-timed N] [--only NAME ...]

For each configs/*.yaml it uses the run given by --run NAME=RUN_DIR (read only: the
firmware is built under DIR/NAME/mcu), else DIR/<config name> when that holds a
trained run (model.pt), else trains one quickly there (epochs=1, train_subset=3000,
no augmentation): cycles depend on activation sparsity, so the table says how each
model was trained. Columns: flash and SRAM bytes (SRAM = static + measured stack
peak), fits the CH32V003 (16 KB / 2 KB; "NO" rows are measured on a virtual chip with
64 KB of SRAM), where the fast kernels run (SRAM, or flash when SRAM is short), mean
instructions and model cycles (QingKe V2A model, estimates), ms at 48 MHz,
mismatches vs the host C engine (prediction or any accumulator), accuracy on the
checked images, and the cycles per FC layer (from each FC kernel's entry to the
next; the first number is everything before the first FC layer: input, conv layers).
CNN rounds and multiplying types (4bit, 8bit, NF4: libgcc __mulsi3) are 10-100x
longer, so they are timed on --slow-timed images; the timed column says how many.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUICK = ["epochs=1", "train_subset=3000", "augment=false", "compile=false", "threads=1"]


def describe(run: Path) -> str:
    import yaml
    c = yaml.safe_load((run / "config.yaml").read_text())
    if c.get("train_subset"):
        return f"quick ({c.get('epochs')} epoch, {c['train_subset']} images)"
    return f"full ({c.get('epochs')} epochs, augment={c.get('augment')})"


def ensure_run(cfg_path: Path, runs: Path, given: dict, log) -> Path:
    from bitnetlib.training.config import load_config
    from bitnetlib.training.train import train
    if cfg_path.stem in given:
        return Path(given[cfg_path.stem])
    run = runs / cfg_path.stem
    if not (run / "model.pt").exists():
        log(f"training {cfg_path.stem} quickly into {run}")
        train(load_config(cfg_path, QUICK), run, progress=False, log=lambda s: None)
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=str(ROOT / "runs" / "mcu"))
    ap.add_argument("--run", action="append", default=[], metavar="NAME=RUN_DIR",
                    help="use this trained run for config NAME (not modified)")
    ap.add_argument("--images", type=int, default=20, help="images checked bit-exact")
    ap.add_argument("--timed", type=int, default=None,
                    help="images timed for FC models without multiplies (default all)")
    ap.add_argument("--slow-timed", type=int, default=3,
                    help="images timed for CNNs and 4bit / 8bit / NF4 (multiplying) models")
    ap.add_argument("--only", nargs="*", default=None, help="config names (stems)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    import yaml
    from bitnetlib.training.data import load_mnist
    from bitnetlib.pipeline import mcu_run
    data = load_mnist(None)
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    given = dict(r.split("=", 1) for r in args.run)
    log = lambda s: print(s, file=sys.stderr, flush=True)
    rows = []
    for cfg in sorted((ROOT / "configs").glob("*.yaml")):
        if args.only and cfg.stem not in args.only:
            continue
        c = yaml.safe_load(cfg.read_text())
        cnn = c.get("model") == "cnn"
        quants = [c.get("conv_quant" if cnn else "quant")] + list(c.get("quant_per_layer") or [])
        slow = cnn or any(str(q) in ("4bit", "8bit", "NF4") for q in quants)
        if any(str(q).lower() in ("none", "float") for q in quants):
            rows.append(dict(config=cfg.stem, kernel="-",
                             error="float weights (a distillation teacher): not an MCU model"))
            continue
        try:
            run = ensure_run(cfg, runs, given, log)
            how = describe(run)
        except Exception as e:  # noqa: BLE001 (a config that cannot train: say so, go on)
            rows.append(dict(config=cfg.stem, kernel="-", error=f"training: {e}"))
            continue
        for kernel in ("baseline", "fast"):
            try:
                r = mcu_run(run, kernel=kernel, images=args.images,
                            timed=args.slow_timed if slow else args.timed, data=data, log=log,
                            build_dir=runs / cfg.stem / "mcu" / kernel)
            except Exception as e:  # noqa: BLE001 (emulator faults too: report, go on)
                r = dict(kernel=kernel, error=(str(e).splitlines() or [repr(e)])[-1])
            r.update(config=cfg.stem, trained=how)
            rows.append(r)
            log(json.dumps({k: r.get(k) for k in ("config", "kernel", "cycles_mean", "error")}))
    head = (f"{'config':26} {'kernel':8} {'flash':>6} {'sram':>5} {'fits':>4} {'hot':>5} "
            f"{'instr':>9} {'cycles':>9} {'ms@48':>7} {'timed':>5} {'mism':>4} {'acc%':>6}  "
            f"trained; cycles per layer")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['config']:26} {r['kernel']:8} error: {r['error']}")
            continue
        layers = "/".join(f"{v / 1000:.1f}k" for v in r.get("layer_cycles_mean") or [])
        print(f"{r['config']:26} {r['kernel']:8} {r['flash_bytes']:6d} {r['ram_bytes']:5d} "
              f"{'yes' if r['fits_ch32v003'] else 'NO':>4} {r['hot_code']:>5} "
              f"{r['instructions_mean']:9.0f} {r['cycles_mean']:9.0f} {r['ms_at_48mhz']:7.2f} "
              f"{r['timed_images']:5d} {r['mismatch_vs_host']:4d} {r['accuracy']:6.2f}  "
              f"{r['trained']}; {layers}")
    print(f"(bit-exact check on {args.images} MNIST test images per row; cycles: mean over "
          f"the timed images, QingKe V2A model of ../shared/mcu-measurement.md, estimates; "
          f"fits NO = measured on a virtual chip with more SRAM / flash; hot: where the "
          f"fast kernels run)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
