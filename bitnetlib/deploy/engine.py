"""The C engine from Python: build the shared library with gcc, load it with cppyy.

The library is built once per source hash into ``$BITNET_CACHE`` (default
``~/.cache/bitnetlib``)/engine/<hash>/ with the engine's strict flags, then loaded
with ``cppyy.include('bitnet.h')`` + ``cppyy.load_library``. Every wrapper checks
dtype and size of the numpy buffers before the call (a wrong buffer is a
ValueError, never a crash) and turns a non-zero bn_status into an EngineError.
"""
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..wtypes import TYPE_IDS
from .model import read_header_id
from .packing import ExportError

C_DIR = Path(__file__).resolve().parents[2] / "c_engine"
SOURCES = ("bn_kernels.c", "bn_kernels_fast.c", "bn_conv.c", "bn_network.c", "bn_moe.c")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
_loaded = {}


def c_enum(name: str, header: Path = C_DIR / "bitnet.h") -> dict:
    """{value: NAME} of the typedef enum ``name`` in bitnet.h (its one definition)."""
    text = header.read_text()
    m = re.search(r"typedef enum \{([^}]*)\}\s*" + re.escape(name) + r"\s*;", text)
    if m is None:
        raise EngineError(f"{header}: no 'typedef enum {{...}} {name};'")
    body = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    pairs = re.findall(r"(\w+)\s*=\s*(-?\d+)", body)
    return {int(v): k for k, v in pairs}


class EngineError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("BITNET_CACHE", Path.home() / ".cache" / "bitnetlib"))


def source_hash(extra_flags=()) -> str:
    h = hashlib.sha256(" ".join(CFLAGS + list(extra_flags)).encode())
    for name in ("bitnet.h", "bn_conv.h", *SOURCES):
        h.update((C_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def build_library(extra_flags=()) -> Path:
    """The engine as a shared library, built (atomically) unless cached."""
    out = cache_dir() / "engine" / source_hash(extra_flags) / "libbitnet.so"
    if out.exists():
        return out
    if shutil.which("gcc") is None:
        raise EngineError("gcc not found: the C engine needs gcc to build")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = ["gcc", *CFLAGS, *extra_flags, "-fPIC", "-shared", "-o", tmp,
           *[str(C_DIR / s) for s in SOURCES]]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        os.unlink(tmp)
        raise EngineError(f"building the engine failed:\n{' '.join(cmd)}\n{res.stderr}")
    os.replace(tmp, out)
    return out


def lib():
    """cppyy's global namespace with the engine loaded (once per process)."""
    if "gbl" not in _loaded:
        import cppyy
        path = build_library()
        cppyy.add_include_path(str(C_DIR))
        cppyy.include("bitnet.h")
        cppyy.load_library(str(path))
        _loaded["gbl"] = cppyy.gbl
    return _loaded["gbl"]


def status_name(status: int) -> str:
    """The bn_status name of a return code, read from bitnet.h."""
    if "status" not in _loaded:
        _loaded["status"] = c_enum("bn_status")
    return _loaded["status"].get(int(status), str(status))


def check(status, what: str):
    status = int(status)
    if status != 0:
        raise EngineError(f"{what} returned {status_name(status)}")


def buf(a, dtype, n: int, what: str) -> np.ndarray:
    """``a`` as a C-contiguous array of exactly ``dtype`` and ``n`` elements."""
    a = np.asarray(a)
    if a.dtype != np.dtype(dtype):
        raise ValueError(f"{what}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if a.size != n:
        raise ValueError(f"{what}: expected {n} elements, got {a.size} (shape {a.shape})")
    return np.ascontiguousarray(a)


def wtype_id(wtype) -> int:
    return TYPE_IDS[wtype] if isinstance(wtype, str) else int(wtype)


def fc(wtype, packed: np.ndarray, act: np.ndarray, n_in: int) -> np.ndarray:
    """(out, wpr) uint32 packed weights, (n_in,) int8 -> (out,) int32 accumulators."""
    packed = np.asarray(packed)
    if packed.ndim != 2:
        raise ValueError(f"packed weights: expected (out, words_per_row), got {packed.shape}")
    out, wpr = packed.shape
    w = buf(packed, np.uint32, out * wpr, "packed weights")
    a = buf(act, np.int8, n_in, "activations")
    acc = np.zeros(out, dtype=np.int32)
    check(lib().bn_fc(wtype_id(wtype), w, wpr, a, n_in, out, acc), "bn_fc")
    return acc


def shiftnorm_relu(acc: np.ndarray):
    """(n,) int32 -> ((n,) int8 activations, shift, argmax)."""
    acc = buf(acc, np.int32, np.size(acc), "accumulators")
    out, sh, am = np.zeros(acc.size, np.int8), np.zeros(1, np.uint8), np.zeros(1, np.uint16)
    check(lib().bn_shiftnorm_relu(acc, acc.size, out, sh, am), "bn_shiftnorm_relu")
    return out, int(sh[0]), int(am[0])


def act_limit(act: np.ndarray, limit: int):
    """(n,) int8 -> ((n,) int8 in -limit..limit, shift): bn_act_limit."""
    act = buf(act, np.int8, np.size(act), "activations")
    out, sh = np.zeros(act.size, np.int8), np.zeros(1, np.uint8)
    check(lib().bn_act_limit(act, act.size, limit, out, sh), "bn_act_limit")
    return out, int(sh[0])


def unpack_row(wtype, words: np.ndarray, n: int) -> np.ndarray:
    w = buf(words, np.uint32, np.size(words), "packed row")
    out = np.zeros(n, np.int16)
    check(lib().bn_unpack_row(wtype_id(wtype), w, w.size, n, out), "bn_unpack_row")
    return out


class EngineModel:
    """A generated model header, compiled by cppyy and run by ``bn_run_network``.

    ``expect_id`` (the model_id of the run being checked) guards against a header
    exported from another model.
    """

    def __init__(self, header, expect_id=None):
        header = Path(header)
        if not header.exists():
            raise FileNotFoundError(f"{header} not found: run `bitnet export` first")
        hid = read_header_id(header)
        if expect_id is not None and hid != expect_id:
            raise ExportError(f"{header} was exported from another model (model_id "
                              f"0x{hid:08X}, this run gives 0x{expect_id:08X}); re-export it")
        g, sym = lib(), f"bn_model_{hid:08x}"
        if not hasattr(g, sym):
            import cppyy
            try:    # the text, not the path: cling skips a file whose inode it has seen,
                    # and a deleted temporary header's inode comes back for the next one
                cppyy.cppdef(header.read_text())
            except Exception as e:  # cling reports compile errors as ImportError/SyntaxError
                raise EngineError(f"{header}: does not compile as a model header: {e}") from e
            if not hasattr(g, sym):
                raise EngineError(f"{header}: defines no {sym}")
        self.model, self.header = getattr(g, sym), header
        if int(self.model.model_id) != hid:
            raise EngineError(f"{header}: model_id field disagrees with its symbol")
        self.input_len, self.n_classes = int(self.model.input_len), int(self.model.n_classes)
        n = int(g.bn_scratch_bytes(self.model))
        if n == 0:
            raise EngineError(f"{header}: the engine rejects this model description")
        self.scratch_bytes = n                                # bn_scratch_bytes
        self.scratch = np.zeros(n // 4 + 1, np.int32)       # int32-aligned scratch
        self.trace_len = int(g.bn_trace_len(self.model))

    def _inputs(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.input_len:
            raise ValueError(f"inputs: expected (N, {self.input_len}) int8, got {x.shape}")
        return buf(x, np.int8, x.size, "inputs")

    def run(self, x):
        """(N, input_len) int8 -> ((N,) predictions, (N, n_classes) int32 logits)."""
        x = self._inputs(x)
        preds = np.zeros(len(x), np.uint16)
        logits = np.zeros((len(x), self.n_classes), np.int32)
        if len(x) == 0:                         # nothing to run (and no buffer to pass)
            return preds.astype(np.int64), logits
        check(lib().bn_run_batch(self.model, x, len(x), self.input_len, preds, logits,
                                 self.scratch, self.scratch.nbytes), "bn_run_batch")
        return preds.astype(np.int64), logits

    def trace(self, x1) -> np.ndarray:
        """Every accumulator of one image, in bn_run_network's trace order."""
        x = self._inputs(np.reshape(x1, (1, -1)))[0]
        logits, pred = np.zeros(self.n_classes, np.int32), np.zeros(1, np.uint16)
        tr = np.zeros(self.trace_len, np.int32)
        check(lib().bn_run_network(self.model, x, self.input_len, logits, self.n_classes,
                                   pred, self.scratch, self.scratch.nbytes, tr, tr.size),
              "bn_run_network")
        return tr
