"""The C engine as a WebAssembly module (clang --target=wasm32 + wasm-ld), for the book's
page that runs it in the reader's browser.

The module is the engine's own sources (``engine.SOURCES``, unmodified), the wasm entry
points of ``c_engine/wasm/bn_wasm.c`` (input quantization as the host does it, a traced
``bn_run_network``) and the generated model headers of ``bitnet export``, compiled
freestanding (no libc, no imports). It is built once per hash of sources, headers and
flags into ``$BITNET_CACHE/wasm/<hash>/bn_engine.wasm`` (temporary directory, then
rename). ``WASM_EXPORTS`` are the functions the page calls.
"""
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .engine import C_DIR, CFLAGS, SOURCES, cache_dir
from .model import read_header_id

GLUE = C_DIR / "wasm" / "bn_wasm.c"
TOOLS = {"clang": "clang", "wasm-ld": "lld"}        # command -> Debian package
WASM_CFLAGS = ["--target=wasm32", "-ffreestanding", "-nostdlib", *CFLAGS]
WASM_EXPORTS = ("bn_wasm_n_models", "bn_wasm_info", "bn_wasm_input", "bn_wasm_codes",
                "bn_wasm_logits", "bn_wasm_trace", "bn_wasm_acts", "bn_wasm_quantize",
                "bn_wasm_run", "bn_wasm_acts_of")


class WasmError(RuntimeError):
    """The module cannot be built: a missing tool or header, or a compile error."""


def missing_tools() -> list:
    """The Debian packages of the tools that are not on PATH (``make wasm-toolchain``)."""
    return [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]


def have_toolchain() -> bool:
    return not missing_tools()


def models_header(headers) -> str:
    """bn_wasm_models.h: include every model header, list their bn_model symbols."""
    ids = [read_header_id(h) for h in headers]
    if len(set(ids)) != len(ids):
        raise WasmError(f"model headers {', '.join(map(str, headers))}: two share a model_id")
    lines = [f'#include "model{i}.h"' for i in range(len(headers))]
    syms = ", ".join(f"&bn_model_{i:08x}" for i in ids)
    return "\n".join(lines + [f"#define BN_WASM_MODELS {{{syms}}}", ""])


def module_hash(headers) -> str:
    h = hashlib.sha256(" ".join(WASM_CFLAGS + list(WASM_EXPORTS)).encode())
    for p in (C_DIR / "bitnet.h", *(C_DIR / s for s in SOURCES), GLUE, *headers):
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def check_inputs(headers) -> list:
    headers = [Path(h) for h in headers]
    if not headers:
        raise WasmError("build_module: no model headers given")
    for h in headers:
        if not h.is_file():
            raise WasmError(f"model header {h} not found: run `bitnet export` on its run")
    if missing_tools():
        raise WasmError(f"clang / wasm-ld not found: install the Debian packages "
                        f"{' '.join(missing_tools())} (make wasm-toolchain)")
    return headers


def compile_module(headers, tmp: Path) -> Path:
    """Compile and link in ``tmp``; the module's path there."""
    for i, h in enumerate(headers):
        shutil.copyfile(h, tmp / f"model{i}.h")
    (tmp / "bn_wasm_models.h").write_text(models_header(headers))
    objs = []
    for src in (*(C_DIR / s for s in SOURCES), GLUE):
        obj = tmp / (src.stem + ".o")
        run(["clang", *WASM_CFLAGS, f"-I{C_DIR}", f"-I{tmp}", "-c", str(src), "-o", str(obj)],
            f"compiling {src.name}")
        objs.append(str(obj))
    out = tmp / "bn_engine.wasm"
    run(["wasm-ld", "--no-entry", "--strip-all", *(f"--export={e}" for e in WASM_EXPORTS),
         "-o", str(out), *objs], "linking the module")
    return out


def run(cmd, what: str):
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        first = (res.stderr.strip().splitlines() or ["(no output)"])[0]
        raise WasmError(f"{what} for wasm32 failed ({cmd[0]}): {first}")


def build_module(headers) -> Path:
    """The wasm module of the engine and these model headers (in this order: model m of
    the page is ``headers[m]``), built unless cached."""
    headers = check_inputs(headers)
    out = cache_dir() / "wasm" / module_hash(headers) / "bn_engine.wasm"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bitnet-wasm-") as tmp:
        built = compile_module(headers, Path(tmp))
        part = out.with_name(f"{out.name}.{os.getpid()}.tmp")
        shutil.copyfile(built, part)
        os.replace(part, out)
    return out
