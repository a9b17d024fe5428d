"""Chapter 27's measurements of a run's weights: per-layer code statistics of the
exported model, the same after post-training quantization, and the emulated
Huffman decoder's cycles (cached by the hash of the sources that decide them)."""
import hashlib

from ..deploy import codestats, huffbench
from ..training.data import REPO_ROOT
from ..training.export import export_model
from ..training.ptq import post_training_quantize
from .cache import cache_root, config_key, resolve_config, run_cached, run_dir_of
from .derived import cached_result

BENCH_SOURCES = ("c_engine/bitnet.h", "c_engine/bn_huffman.h", "c_engine/bn_huffman.c",
                 "firmware/huffbench.c", "firmware/bench_runtime.h", "firmware/startup.S",
                 "firmware/ch32v003.ld", "bitnetlib/deploy/huffbench.py",
                 "bitnetlib/deploy/benchbuild.py", "bitnetlib/deploy/huffman.py",
                 "bitnetlib/deploy/emulator.py", "bitnetlib/deploy/cycles.py",
                 "bitnetlib/deploy/rv32ec.py", "bitnetlib/deploy/packing.py")


def export_stats(cfg) -> list:
    """``codestats.layer_stats`` of a run's exported model (rows layout); the run is
    trained first if it is not cached (``run_cached``)."""
    from ..pipeline import export_run
    cfg = resolve_config(cfg)
    run_cached(cfg)
    _, _, exp = export_run(run_dir_of(cfg))
    return codestats.layer_stats(exp)


def ptq_stats(model, cfg, wtype: str) -> list:
    """``codestats.layer_stats`` of ``model`` post-training quantized to ``wtype`` with
    the run's clip rule and quantscale (as chapter 3 does)."""
    q = post_training_quantize(model, cfg, wtype, clip=cfg.clip, quantscale=cfg.quantscale)
    return codestats.layer_stats(export_model(q.cpu()))


def bench_source_hash() -> str:
    h = hashlib.sha256()
    for name in BENCH_SOURCES:
        h.update(name.encode() + (REPO_ROOT / name).read_bytes())
    return h.hexdigest()[:16]


def huffman_bench(cfg, decoder_in: str = "flash", recompute=None) -> list:
    """``huffbench.emulate`` of a finished run's model (per layer: instructions, cycles),
    stored in the run cache (runs/cache/huffbench/<key>_<decoder_in>.json, never in the
    results store) keyed by ``bench_source_hash``."""
    from ..pipeline import export_run
    cfg = resolve_config(cfg)
    path = cache_root() / "huffbench" / f"{config_key(cfg)}_{decoder_in}.json"
    path.parent.mkdir(parents=True, exist_ok=True)

    def compute():
        _, _, exp = export_run(run_dir_of(cfg))
        return {"layers": huffbench.emulate(exp, decoder_in)}
    return cached_result(path, "sources", bench_source_hash(), compute, "bench_seconds",
                         recompute)["layers"]
