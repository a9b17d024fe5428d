"""A mixture-of-experts header in the C engine (``bn_run_moe``, bn_moe.c) via cppyy."""
from pathlib import Path

import numpy as np

from .engine import EngineError, buf, check, lib
from .moe import read_moe_symbol


class EngineMoE:
    """A header written by ``deploy.moe.write_moe_header``, compiled by cppyy.
    ``expect_id``: the moe_id of the export being checked (a stale header is refused)."""

    def __init__(self, header, expect_id=None):
        header = Path(header)
        sym, g = read_moe_symbol(header), lib()
        if expect_id is not None and sym != f"bn_moe_{expect_id:08x}":
            raise EngineError(f"{header} defines {sym}, this export is "
                              f"bn_moe_{expect_id:08x}: re-export it")
        if not hasattr(g, sym):
            import cppyy
            try:        # the text, not the path (see EngineModel)
                cppyy.cppdef(header.read_text())
            except Exception as e:
                raise EngineError(f"{header}: does not compile as a moe header: {e}") from e
        self.moe = getattr(g, sym)
        self.n_experts = int(self.moe.n_experts)
        first = self.moe.trunk if self.moe.trunk else self.moe.gate
        self.input_len, self.n_classes = int(first.input_len), int(self.moe.experts[0].n_classes)
        n = int(g.bn_moe_scratch_bytes(self.moe))
        if n == 0:
            raise EngineError(f"{header}: the engine rejects this mixture of experts")
        self.scratch_bytes = n
        self.scratch = np.zeros(n // 4 + 1, np.int32)

    def run(self, x):
        """(N, input_len) int8 -> ((N,) predictions, (N, n_classes) int32 logits,
        (N,) chosen experts), one bn_run_moe call per image."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.input_len:
            raise ValueError(f"inputs: expected (N, {self.input_len}) int8, got {x.shape}")
        x = buf(x, np.int8, x.size, "inputs")
        preds, experts = np.zeros(len(x), np.int64), np.zeros(len(x), np.int64)
        logits = np.zeros((len(x), self.n_classes), np.int32)
        p, e = np.zeros(1, np.uint16), np.zeros(1, np.uint16)
        g = lib()
        for i in range(len(x)):
            row = logits[i]
            check(g.bn_run_moe(self.moe, x[i], self.input_len, row, self.n_classes, p, e,
                               self.scratch, self.scratch.nbytes), "bn_run_moe")
            preds[i], experts[i] = int(p[0]), int(e[0])
        return preds, logits, experts
