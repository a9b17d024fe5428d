"""The ``bitnet`` command line.

    bitnet train CONFIG.yaml [--set key=value ...] [--out RUN_DIR] [--fresh]
    bitnet stats RUN_DIR
"""
import argparse
import sys
from pathlib import Path

from .config import ConfigError, load_config
from .data import DataError


def cmd_train(args):
    cfg = load_config(args.config, args.set)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    print(f"training {cfg.model} {cfg.widths} into {out}", flush=True)
    from .train import train
    _, metrics = train(cfg, out, fresh=args.fresh, progress=not args.no_progress)
    if metrics:
        print(f"final test accuracy {metrics[-1]['test_acc']:.2f}%")


def cmd_stats(args):
    from .stats import format_stats, model_stats
    from .train import load_run
    _, model = load_run(args.run_dir)
    print(format_stats(model_stats(model)))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bitnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="YAML config file (see configs/)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="override config keys, values in YAML syntax (widths=[32,32])")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("stats", help="per-layer statistics of a trained run")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_stats)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (ConfigError, DataError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
