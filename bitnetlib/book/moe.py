"""The mixture-of-experts chapter's helpers: designs at a byte budget, and the checks
and emulated firmware of ``fc_moe`` runs, stored in the run directory (like
``cache.mcu_cached``) under the engine's or the firmware's source hash; and what
``bitnet export`` / ``bitnet verify`` do with an fc_moe run directory."""
import tempfile
from pathlib import Path

import numpy as np

from ..deploy import engine, intmodel
from ..deploy.model import fc_weight_bytes
from ..deploy.packing import per_word
from ..deploy.moe import firmware_layout, moe_symbol, read_moe_symbol, run_moe, write_moe_header
from ..deploy.moe_engine import EngineMoE
from ..deploy.packing import ExportError
from ..pipeline import load_model_file
from ..training.data import load_mnist
from ..training.export_moe import export_moe
from ..training.moe import N_CLASSES
from .cache import cached_data, run_cached, run_dir_of
from .derived import cached_result, firmware_source_hash


def moe_bytes(n_experts: int, gate_widths, expert_widths, trunk: int, quant: str,
              in_features: int = 256) -> int:
    """Packed weight bytes (rows layout) of an fc_moe design before it is trained: the
    trunk, the gate and every expert (``deploy.model.fc_weight_bytes`` of each)."""
    feat = trunk or in_features
    nets = ([[in_features, trunk]] if trunk else []) + [[feat, *gate_widths, n_experts]] \
        + [[feat, *expert_widths, N_CLASSES]] * n_experts
    return sum(fc_weight_bytes(s, [quant] * (len(s) - 1)) for s in nets)


def expert_width(budget: int, n_experts: int, gate_widths, trunk: int, quant: str) -> int:
    """The widest one-hidden-layer expert (feat -> w -> 10) whose design fits ``budget``,
    w a multiple of the type's weights per word (a row of the next layer fills whole
    words: no padding, and the row kernels' fast path)."""
    step = per_word(quant)
    w = step
    while moe_bytes(n_experts, gate_widths, [w + step], trunk, quant) <= budget:
        w += step
    if moe_bytes(n_experts, gate_widths, [w], trunk, quant) > budget:
        raise ValueError(f"{n_experts} experts with trunk {trunk} and gate {gate_widths} do "
                         f"not fit {budget} bytes even {step} wide")
    return w


def moe_compare(model, data, header=None) -> dict:
    """All test images of ``data`` through the fake-quantized model (routing), the
    integer model and the C engine (``bn_run_moe``, from ``header`` or a temporary
    export): accuracies, expert loads, disagreements."""
    exp = export_moe(model, "rows")
    x = intmodel.input_codes(data.test_x.cpu())
    ref = run_moe(exp, x)
    with tempfile.TemporaryDirectory(prefix="bitnet-moe-") as tmp:
        header = header or write_moe_header(exp, Path(tmp) / "moe.h")
        pred_c, logits_c, expert_c = EngineMoE(header, exp.moe_id).run(x.astype(np.int8))
    route = np.concatenate([model.cpu().route(data.test_x[i:i + 4096].cpu())[2].numpy()
                            for i in range(0, len(x), 4096)])
    y = data.test_y.cpu().numpy()
    load = np.bincount(ref.expert, minlength=exp.n_experts) / len(x)
    return dict(weight_bytes=exp.weight_bytes, acc_int=100.0 * float((ref.pred == y).mean()),
                load_int=[float(v) for v in load],
                mismatch_c_int=int((pred_c != ref.pred).sum() + (expert_c != ref.expert).sum()
                                   + (logits_c != ref.logits).any(axis=1).sum()),
                route_differs_float_int=int((route != ref.expert).sum()),
                per_expert_acc_int=[100.0 * float((ref.pred[ref.expert == e] == y[ref.expert == e])
                                                  .mean()) if (ref.expert == e).any() else None
                                    for e in range(exp.n_experts)])


def moe_check(cfg) -> dict:
    """``moe_compare`` of a cached run on its test set."""
    model, _ = run_cached(cfg)
    return moe_compare(model, cached_data(cfg))


def export_moe_run(run_dir, header, layout: str = "rows", model=None):
    """(model, ExportedMoE) of an fc_moe run directory, its header (``write_moe_header``:
    the networks and the bn_moe of them) written to ``header``."""
    if model is None:
        _, model = load_model_file(run_dir)
    exp = export_moe(model, layout)
    write_moe_header(exp, header, str(run_dir))
    return model, exp


def verify_moe_run(run_dir, header=None) -> dict:
    """``moe_compare`` of an fc_moe run directory on all test images, the C engine
    reading ``header`` (default RUN_DIR/bitnet_model.h: the run's own rows export,
    written again when it is missing or from another export, as ``pipeline.verify``)."""
    cfg, model = load_model_file(run_dir)
    own = Path(run_dir) / "bitnet_model.h"
    header = Path(header) if header else own
    if header == own:
        sym = moe_symbol(export_moe(model, "rows"))
        try:
            stale = read_moe_symbol(own) != sym
        except (OSError, ExportError):            # missing, or not a mixture's header
            stale = True
        if stale:
            export_moe_run(run_dir, own, "rows", model)
    return moe_compare(model, load_mnist(cfg.data_root or None), header)


def moe_check_cached(cfg, recompute=None) -> dict:
    return cached_result(run_dir_of(cfg) / "moe_verify.json", "engine", engine.source_hash(),
                         lambda: moe_check(cfg), "verify_seconds", recompute)


def moe_mcu_cached(cfg, images: int, kernel: str = "fast", recompute=None) -> dict:
    """``deploy.moe_firmware.mcu_moe`` of a run on the first ``images`` test images
    (every image checked against the host engine, every round counted); the fast
    kernels get ``deploy.moe.firmware_layout``."""
    from ..deploy.moe_firmware import mcu_moe

    def compute():
        model, _ = run_cached(cfg)
        exp = export_moe(model, "rows")
        exp = firmware_layout(exp) if kernel == "fast" else exp
        x = intmodel.input_codes(cached_data(cfg).test_x[:images].cpu()).astype(np.int8)
        with tempfile.TemporaryDirectory(prefix="bitnet-fw-") as tmp:
            r = mcu_moe(exp, write_moe_header(exp, Path(tmp) / "moe.h"), x, kernel, tmp)
        r["expert_cycles_mean"] = {str(k): v for k, v in r["expert_cycles_mean"].items()}
        return r
    return cached_result(run_dir_of(cfg) / f"mcu_moe_{kernel}_{images}.json", "firmware",
                         firmware_source_hash(), compute, "mcu_seconds", recompute)
