"""The engine's C source as the book shows it: one function's text, and the machine
instructions of each kernel compiled for this host."""
import re
import subprocess
import tempfile
from pathlib import Path

from ..training.data import REPO_ROOT


def c_function(name: str) -> str:
    """The source text of one C function of the engine (c_engine/*.c), signature to '}'."""
    for src in sorted((REPO_ROOT / "c_engine").glob("*.c")):
        text = src.read_text()
        for m in re.finditer(rf"^[A-Za-z_][\w \*]*\b{re.escape(name)}\(", text, re.M):
            rest = text[m.end():]
            if rest.find("{") < rest.find(";") or ";" not in rest:   # a definition
                end = text.index("\n}\n", m.start()) + 2
                return text[m.start():end]
    raise KeyError(f"no C function {name!r} in c_engine/*.c")


def kernel_instructions(extra_flags=("-O2",)) -> dict:
    """Per FC kernel of c_engine/bn_kernels.c compiled for this host: machine
    instructions in the function and how many of them are multiplies (objdump)."""
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "k.o"
        subprocess.run(["gcc", "-std=c99", *extra_flags, "-c", "-o", str(obj),
                        str(REPO_ROOT / "c_engine" / "bn_kernels.c")], check=True)
        dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(obj)],
                             capture_output=True, text=True, check=True).stdout
    out, name = {}, None
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(\w+)>:", line)
        if m:
            name = m.group(1)
            out[name] = {"instructions": 0, "multiplies": 0}
        elif name and re.match(r"^\s+[0-9a-f]+:\s+\S", line):
            op = line.split(":", 1)[1].split()[0]
            out[name]["instructions"] += 1
            out[name]["multiplies"] += op.startswith(("imul", "mul"))
    return out
