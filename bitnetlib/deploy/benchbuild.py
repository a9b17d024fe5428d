"""Building and driving the bench images (firmware/huffbench.c, firmware/rescalebench.c):
small RV32EC images with no model and no engine that time one piece of code in the
emulated CH32V003.

    build      firmware/<name>.c (which includes the bench runtime, bench_runtime.h: the
               host I/O, bn_fw_sync, memset / memcpy) with startup.S and ch32v003.ld, and a
               generated data header passed as BN_BENCH_DATA (riscv gcc -Os, rv32ec,
               the rv32e libgcc for __mulsi3)
    emulator   the same, built in a temporary directory and loaded in
               ``emulator.Emulator`` (stopped at its first bn_fw_sync)
    next_round / set_trace / io_word / trace   one round, and what it left in bn_fw_io
               and bn_fw_trace
    timed_round  one round counted (``emulator.Emulator.start_counting`` first): its
               per-function profile and counts, RV32EC checked

Nothing here is part of an inference firmware run (book.derived.firmware_source_hash
leaves this module and the bench sources out).
"""
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .engine import C_DIR
from .firmware import FW_DIR, McuError, cross_prefix, have_toolchain

ARCH = ["-march=rv32ec_zicsr", "-mabi=ilp32e"]
CFLAGS = ["-std=c99", "-Os", "-Wall", "-Wextra", "-Werror", "-ffreestanding", "-nostdlib",
          "-nostartfiles", "-ffunction-sections", "-fdata-sections", "-msmall-data-limit=0"]
LDFLAGS = ["-Wl,--gc-sections", "-Wl,--no-warn-rwx-segments", f"-T{FW_DIR / 'ch32v003.ld'}",
           "-Wl,--defsym=RAM_SIZE=2048"]


def c_array(ctype: str, name: str, values) -> str:
    """A C array definition; a ``const`` ctype puts it in flash, else it is in SRAM (.data)."""
    suffix = "u" if ctype.endswith("uint32_t") else ""
    vals = [str(int(v)) + suffix for v in values]
    rows = [", ".join(vals[i:i + 12]) for i in range(0, len(vals), 12)]
    return f"static {ctype} {name}[{len(vals)}] = {{\n    " + ",\n    ".join(rows) + "\n};"


def libgcc() -> str:
    """The rv32e/ilp32e libgcc (rv32ec_zicsr matches no multilib: named explicitly)."""
    return subprocess.run([cross_prefix() + "gcc", "-march=rv32e", "-mabi=ilp32e",
                           "-print-libgcc-file-name"], capture_output=True, text=True
                          ).stdout.strip()


def build(name: str, data_text: str, build_dir, sources=(), defines=()) -> Path:
    """The ELF of firmware/<name>.c with ``data_text`` as its BN_BENCH_DATA header;
    ``sources``: more C files to compile (paths), ``defines``: more -D options."""
    if not have_toolchain():
        raise McuError(f"{cross_prefix()}gcc not found: install the RISC-V toolchain "
                       f"(`make toolchain`)")
    build_dir = Path(build_dir)
    data, elf = build_dir / f"{name}_data.h", build_dir / f"{name}.elf"
    data.write_text(data_text)
    cmd = [cross_prefix() + "gcc", *ARCH, *CFLAGS, f"-I{C_DIR}", f"-I{FW_DIR}",
           f'-DBN_BENCH_DATA="{data}"', *defines, *LDFLAGS, "-o", str(elf),
           str(FW_DIR / "startup.S"), str(FW_DIR / f"{name}.c"), *map(str, sources), libgcc()]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise McuError(f"{name} build failed:\n{res.stderr[-2000:]}")
    return elf


def emulator(name: str, data_text: str, sources=(), defines=()):
    """``build`` in a temporary directory, loaded in ``emulator.Emulator``."""
    from .emulator import Emulator
    with tempfile.TemporaryDirectory(prefix=f"bitnet-{name}-") as tmp:
        return Emulator(build(name, data_text, tmp, sources, defines))


def next_round(emu) -> None:
    """Runs the bench from bn_fw_sync to bn_fw_sync: one round."""
    from unicorn.riscv_const import UC_RISCV_REG_RA
    emu.until_sync(emu.uc.reg_read(UC_RISCV_REG_RA))


def set_trace(emu, on: bool) -> None:
    """bn_fw_io.flags bit 0: the rounds that follow copy their result to bn_fw_trace."""
    emu.uc.mem_write(emu.io + emu.layout["flags"], int(on).to_bytes(4, "little"))


def io_word(emu, field: str) -> int:
    """A signed 32-bit field of bn_fw_io (status, pred, rounds)."""
    return int.from_bytes(bytes(emu.uc.mem_read(emu.io + emu.layout[field], 4)), "little",
                          signed=True)


def trace(emu, n: int, dtype) -> np.ndarray:
    """The first ``n`` elements of bn_fw_trace."""
    size = n * np.dtype(dtype).itemsize
    return np.frombuffer(bytes(emu.uc.mem_read(emu.sym["bn_fw_trace"], size)), dtype)


def timed_round(emu):
    """One counted round: (``profile()``, ``take_counts()``); an instruction outside
    RV32EC is an McuError."""
    next_round(emu)
    prof, counts = emu.profile(), emu.take_counts()
    if emu.bad:
        raise McuError(f"not RV32EC: {emu.bad[:3]}")
    return prof, counts
