"""The ``bitnet`` command line.

    bitnet train CONFIG.yaml [--set key=value ...] [--out RUN_DIR] [--fresh]
    bitnet stats RUN_DIR
    bitnet export RUN_DIR [--header PATH] [--layout rows|cols]
    bitnet verify RUN_DIR [--header PATH] [--json]
    bitnet mcu RUN_DIR [--kernel baseline|fast] [--images N] [--timed N] [--json]
    bitnet results [list|runs|size|fill] [--json] [--chapters ...] [--scheduler ADDR]
    bitnet search [--study NAME] [--trials N] [--storage URL] [--scheduler ADDR] [--workers N]
                  [--sampler nsga2|tpe] [--budget BYTES] [--set key=value ...]

An ``fc_moe`` run (mixture of experts) exports as its networks and the ``bn_moe`` of them
(``bn_run_moe``), and verify checks the C engine against the integer model on every
prediction, chosen expert and logit (``book.moe.verify_moe_run``).

Exit codes: 0 success; 1 a check found differences (verify: C engine vs integer
model, mcu: firmware vs host engine; results fill: chapters that still stop); 2 bad
input or a failed step (one line on stderr, ``error: ...`` or, for a bad argument,
``bitnet CMD: error: ...``); 130 interrupted (Ctrl-C: rerun to resume).
"""
import argparse
import json
import sys
from pathlib import Path

from .pipeline import DEPLOY_ERRORS, export_run, format_result, load_model_file, mcu_run, verify
from .training.config import ConfigError, load_config
from .training.data import DataError


def cmd_train(args):
    cfg = load_config(args.config, args.set)
    out = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    print(f"training {cfg.model} {cfg.widths} into {out}", flush=True)
    from .training.train import train
    _, metrics = train(cfg, out, fresh=args.fresh, progress=not args.no_progress)
    if metrics:
        print(f"final test accuracy {metrics[-1]['test_acc']:.2f}%")


def cmd_stats(args):
    from .training.stats import format_stats, model_stats
    _, model = load_model_file(args.run_dir)
    print(format_stats(model_stats(model)))


class UsageError(ValueError):
    """A command-line argument that cannot work (found before any step runs)."""


def header_arg(args) -> Path:
    """--header, or RUN_DIR/bitnet_model.h: a file path in an existing directory."""
    header = Path(args.header) if args.header else Path(args.run_dir) / "bitnet_model.h"
    if args.header and header.is_dir():
        raise UsageError(f"--header {header}: is a directory; expected a file path, e.g. "
                         f"{header / 'bitnet_model.h'}")
    if args.header and not header.parent.is_dir():
        raise UsageError(f"--header {header}: directory {header.parent} does not exist")
    return header


def moe_model(run_dir):
    """The model of an fc_moe run (mixture of experts), else None (another model, or a
    run that does not load: the command's own step then says why)."""
    try:
        cfg, model = load_model_file(run_dir)
    except (OSError, *DEPLOY_ERRORS):
        return None
    return model if cfg.model == "fc_moe" else None


def cmd_export(args):
    from .deploy.model import format_packed, write_header
    from .training.stats import format_stats, model_stats
    header, model = header_arg(args), moe_model(args.run_dir)
    if model is not None:              # several networks and the bn_moe of them
        from .book.moe import export_moe_run
        _, moe = export_moe_run(args.run_dir, header, args.layout, model)
        parts = ([("trunk", moe.trunk)] if moe.trunk is not None else []) + [
            ("gate", moe.gate)] + [(f"expert {i}", e) for i, e in enumerate(moe.experts)]
        packed = [f"{name}:\n{format_packed(p)}" for name, p in parts]
        packed.append(f"Mixture of {moe.n_experts} experts: {moe.weight_bytes} weight bytes, "
                      f"moe_id 0x{moe.moe_id:08X} (bn_run_moe)")
    else:
        _, model, exp = export_run(args.run_dir, layout=args.layout)
        write_header(exp, header, args.run_dir)
        packed = [format_packed(exp)]
    print(format_stats(model_stats(model)))
    print("\n".join(packed))
    print(f"wrote {header}")


def cmd_verify(args):
    header = args.header and header_arg(args)
    if moe_model(args.run_dir) is not None:
        return verify_moe(args.run_dir, header, args.json)
    r = verify(args.run_dir, header)
    print(f"{r['n']} test images: fake-quant {r['acc_fakequant']:.2f}%, integer model "
          f"{r['acc_int']:.2f}%, C engine {r['acc_c']:.2f}%")
    print(f"disagreements: C vs integer {r['mismatch_c_int']} (logits "
          f"{r['mismatch_logits_c_int']}), integer vs fake-quant {r['mismatch_int_fakequant']} "
          f"(with absmax instead of ShiftNorm: {r['mismatch_absmax_fakequant']})")
    if args.json:
        print(json.dumps(r))
    return 1 if r["mismatch_c_int"] or r["mismatch_logits_c_int"] else 0


def verify_moe(run_dir, header, as_json: bool):
    """``bitnet verify`` of an fc_moe run: integer model vs C engine (bn_run_moe)."""
    from .book.moe import verify_moe_run
    r = verify_moe_run(run_dir, header)
    print(f"mixture of {len(r['load_int'])} experts: integer model {r['acc_int']:.2f}%, "
          f"expert loads {', '.join(f'{v:.2f}' for v in r['load_int'])}")
    print(f"disagreements: C vs integer {r['mismatch_c_int']} (prediction, expert or "
          f"logits), expert choice float vs integer {r['route_differs_float_int']}")
    if as_json:
        print(json.dumps(r))
    return 1 if r["mismatch_c_int"] else 0


def cmd_mcu(args):
    if moe_model(args.run_dir) is not None:
        raise UsageError(f"{args.run_dir}: model=fc_moe; `bitnet mcu` runs one network, the "
                         f"mixture's firmware run is bitnetlib.deploy.moe_firmware.mcu_moe "
                         f"(chapter 30: bitnetlib.book.moe.moe_mcu_cached)")
    r = mcu_run(args.run_dir, kernel=args.kernel, images=args.images, timed=args.timed,
                hooks=not args.no_hooks)
    print(format_result(r))
    if args.json:
        print(json.dumps(r))
    return 1 if r["mismatch_vs_host"] else 0


def cmd_results(args):
    from .book import compute, fill, store, summary
    if args.action == "size":
        print(store.size_report())
    elif args.action == "fill":
        chapters = args.chapters or [p.stem for p in sorted(
            (store.REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))]
        stopped = fill.fill(chapters, args.scheduler or compute.scheduler_from_env(),
                            args.workers)
        print(store.size_report())
        if stopped:
            print(f"error: chapters that still stop: {', '.join(stopped)} (see "
                  f"_build/notebooks/<chapter>.ipynb)", file=sys.stderr)
            return 1
    else:
        rows = summary.run_rows() if args.action == "runs" else summary.headline_results()
        cols = summary.RUN_COLS if args.action == "runs" else summary.HEADLINE_COLS
        print(json.dumps(rows) if args.json else summary.format_rows(rows, cols))


def add_results_command(sub):
    p = sub.add_parser("results", help="the results store: the headline models (list), its "
                                       "size, or fill it with the chapters' runs at full")
    p.add_argument("action", nargs="?", choices=("list", "runs", "size", "fill"), default="list",
                   help="list: the headline models; runs: every stored run; size; fill")
    p.add_argument("--json", action="store_true", help="list / runs: one JSON list")
    p.add_argument("--chapters", nargs="*", help="fill: chapter names (default: all)")
    p.add_argument("--scheduler", help="fill: a Dask scheduler address (tcp://HOST:8786); "
                                       "default $BITNET_SCHEDULER, else a LocalCluster")
    p.add_argument("--workers", type=count_type(1),
                   help="fill: LocalCluster workers (default: cores)")
    p.set_defaults(func=cmd_results)


def cmd_search(args):
    from .book import search
    space = search.space_from_args(args.profile, args.types, args.widths, args.hidden,
                                   args.budget, args.set)
    r = search.search(args.study, space, args.trials, args.storage,
                      args.scheduler or compute_scheduler(), args.workers, args.sampler,
                      args.seed, args.population, progress=not args.no_progress)
    print(f"study {args.study}: {r['completed']} completed trial(s); this call trained "
          f"{r['trained']}, found {r['stored']} already stored, {r['failed']} failed "
          f"({args.storage or search.default_storage(args.study)})")


def compute_scheduler():
    from .book.compute import scheduler_from_env
    return scheduler_from_env()


def list_type(item=str):
    """An argparse type: a comma-separated list (``16,32,64``)."""
    def parse(text):
        try:
            return [item(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return parse


def add_search_command(sub):
    from .book.mixed import STUDY, TRIALS           # chapter 28's study
    p = sub.add_parser("search", help="mixed-precision search with Optuna: per-layer types "
                                      "and widths, C-engine accuracy vs packed bytes")
    p.add_argument("--study", default=STUDY, help=f"study name (default {STUDY}: chapter 28's)")
    p.add_argument("--trials", default=TRIALS, type=count_type(1),
                   help=f"completed trials the study should have (default {TRIALS}); rerun "
                        f"to resume, a larger number extends the study")
    p.add_argument("--storage", help="database URL (default sqlite:///results/optuna/STUDY.db)")
    p.add_argument("--scheduler", help="Dask scheduler address (default $BITNET_SCHEDULER, "
                                       "else a LocalCluster)")
    p.add_argument("--workers", type=count_type(0),
                   help="LocalCluster workers (default: cores; 0: train in this process)")
    p.add_argument("--sampler", choices=("nsga2", "tpe"), default="nsga2")
    p.add_argument("--population", type=count_type(2), default=20, help="NSGA-II generation size")
    p.add_argument("--budget", type=float, help="packed bytes at most (default: the uniform "
                                                "4bitsym model of chapter 22; 0: none)")
    p.add_argument("--profile", choices=("smoke", "full"), default="full",
                   help="chapter 22's recipe and width choices of this profile")
    p.add_argument("--types", type=list_type(), help="weight types, e.g. Binary,Ternary,8bit")
    p.add_argument("--widths", type=list_type(int), help="hidden width choices, e.g. 16,32,64")
    p.add_argument("--hidden", type=count_type(1), help="hidden layers (default: chapter 22's, full 3, smoke 2)")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="training recipe overrides of every trial (config keys)")
    p.add_argument("--seed", type=count_type(0), default=0, help="sampler seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_search)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr (exit code 2) that points at --help."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text) -> str:
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def count_type(minimum: int):
    """An argparse type: an integer >= ``minimum`` (a one-line error otherwise)."""
    def parse(text):
        try:
            n = int(text)
        except ValueError:
            n = None
        if n is None or n < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return n
    return parse


def add_commands(sub):
    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", help="YAML config file (see configs/)")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config keys, values in YAML syntax (widths=[32,32]); "
                        "repeated --set options add up")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("stats", help="per-layer statistics of a trained run")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("export", help="quantize a trained run into a C header")
    p.add_argument("run_dir")
    p.add_argument("--header", help="output header (default RUN_DIR/bitnet_model.h)")
    p.add_argument("--layout", choices=("rows", "cols"), default="rows",
                   help="FC weight order: rows (every kernel) or cols (fast kernels, "
                        "bitnet.h 'FC WEIGHT LAYOUTS')")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("verify", help="fake-quant vs integer model vs C engine on the test "
                                      "set; exit code 1 if the C engine and integer model differ")
    p.add_argument("run_dir")
    p.add_argument("--header", help="model header (default RUN_DIR/bitnet_model.h)")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    p.set_defaults(func=cmd_verify)
    add_mcu_command(sub)
    add_results_command(sub)
    add_search_command(sub)


def add_mcu_command(sub):
    p = sub.add_parser("mcu", help="CH32V003 firmware in an RV32EC emulator: checks vs the "
                                   "host engine, instruction and cycle counts")
    p.add_argument("run_dir")
    p.add_argument("--kernel", choices=("baseline", "fast"), default="fast")
    p.add_argument("--images", type=count_type(1), default=100,
                   help="MNIST test images, >= 1 (default 100)")
    p.add_argument("--timed", type=count_type(0), default=None,
                   help="images counted with hooks (default: all of them; 0: none)")
    p.add_argument("--no-hooks", action="store_true",
                   help="only the bit-exact check, no instruction counting (fast)")
    p.add_argument("--json", action="store_true", help="last line: one JSON object")
    p.set_defaults(func=cmd_mcu)


# what a bad input or a failed step raises: a one-line message, exit code 2. OSError: a
# path given on the command line that cannot be read or written.
ERRORS = (UsageError, ConfigError, DataError, OSError, RuntimeError, *DEPLOY_ERRORS)


def main(argv=None):
    parser = Parser(prog="bitnet", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:               # finished epochs / runs are kept
        print("interrupted: run the same command again to go on", file=sys.stderr)
        return 130
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
