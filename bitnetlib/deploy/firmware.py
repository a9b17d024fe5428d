"""Building the CH32V003 firmware for one exported model (``make -C firmware``).

Debian's riscv64-unknown-elf-gcc, rv32ec/ilp32e. The Makefile compiles the engine and
the model header where they live, links, and checks the sizes (16 KB flash, 2 KB
SRAM); its error lines ``error: flash overflow ...`` / ``error: SRAM overflow ...``
become a ``FirmwareOverflow`` that says which limit was hit. The buffer sizes the
firmware reserves come from the C engine itself (``bn_scratch_bytes``,
``bn_trace_len`` through ``deploy.engine``), never recomputed here.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..wtypes import TYPE_IDS

FW_DIR = Path(__file__).resolve().parents[2] / "firmware"
FLASH_LIMIT, RAM_LIMIT = 16384, 2048
KERNELS = ("baseline", "fast")


class McuError(RuntimeError):
    pass


class FirmwareOverflow(McuError):
    """The build does not fit: ``flash`` / ``sram`` say which limit it exceeds."""

    def __init__(self, message: str, flash: bool, sram: bool):
        super().__init__(message)
        self.flash, self.sram = flash, sram


def cross_prefix() -> str:
    return os.environ.get("CROSS", "riscv64-unknown-elf-")


def have_toolchain() -> bool:
    return shutil.which(cross_prefix() + "gcc") is not None


def fw_constants(exp, header) -> dict:
    """Make variables for one model: its sizes, the buffer sizes the C engine reports
    for its header (bn_scratch_bytes, bn_trace_len), the kernels it needs."""
    from .engine import EngineModel
    engine_model = EngineModel(header, exp.model_id)
    fcs = [l for l in exp.layers if l.kind == "fc"]
    wtypes = fc_wtypes = conv_wtypes = 0
    for l in exp.layers:
        wtypes |= 1 << TYPE_IDS[l.wtype]
        fc_wtypes |= (l.kind == "fc") << TYPE_IDS[l.wtype]
        conv_wtypes |= (l.kind != "fc") << TYPE_IDS[l.wtype]
    layouts = (1 if any(l.layout == "rows" for l in fcs) else 0) | \
              (2 if any(l.layout == "cols" for l in fcs) else 0)
    return dict(INPUT=exp.input_len, CLASSES=exp.n_classes,
                SCRATCH=engine_model.scratch_bytes, TRACE=engine_model.trace_len,
                WTYPES=hex(wtypes), FC_WTYPES=hex(fc_wtypes), CONV_WTYPES=hex(conv_wtypes),
                LAYOUTS=layouts, CENTRE=int(any(l.centre for l in fcs)),
                CONV=int(any(l.kind != "fc" for l in exp.layers)))


def _make_command(header, kernel, build_dir, consts, **limits) -> list:
    cmd = ["make", "--no-print-directory", "-C", str(FW_DIR), f"MODEL={Path(header).resolve()}",
           f"KERNEL={kernel}", f"BUILD={Path(build_dir).resolve()}", f"CROSS={cross_prefix()}"]
    cmd += [f"{k.upper()}={v}" for k, v in limits.items()]
    return cmd + [f"{k}={v}" for k, v in consts.items()]


def _failure(log: str) -> McuError:
    lines = log.splitlines()
    msg = [l for l in lines if "error" in l.lower() or l.startswith(("flash:", "sram:"))]
    text = "firmware build failed:\n" + "\n".join(msg or lines[-20:])
    flash = any(re.match(r"error: flash overflow", l) for l in lines)
    sram = any(re.match(r"error: SRAM overflow", l) for l in lines)
    return FirmwareOverflow(text, flash, sram) if flash or sram else McuError(text)


def build(exp, header, kernel: str, build_dir, ram_size: int = RAM_LIMIT,
          ram_limit: int = RAM_LIMIT, hot_mem: str = "ram",
          flash_limit: int = FLASH_LIMIT, input_mem: str = "flash", consts=None) -> dict:
    """Build the firmware; returns dict(elf, flash, ram_static, log, make variables).
    hot_mem 'flash' keeps the fast kernels out of SRAM (firmware/Makefile HOT_MEM);
    input_mem 'ram' puts the test image in SRAM instead of flash (INPUT_MEM). ``consts``:
    the make variables, if not ``fw_constants``' (a mixture of experts: deploy.moe_firmware)."""
    if kernel not in KERNELS:
        raise McuError(f"kernel {kernel!r}: valid kernels are {', '.join(KERNELS)}")
    if not have_toolchain():
        raise McuError(f"{cross_prefix()}gcc not found: install the RISC-V toolchain "
                       f"(`make toolchain`, or apt-get install gcc-riscv64-unknown-elf "
                       f"binutils-riscv64-unknown-elf picolibc-riscv64-unknown-elf)")
    consts = consts or fw_constants(exp, header)
    cmd = _make_command(header, kernel, build_dir, consts, ram_size=ram_size,
                        ram_limit=ram_limit, hot_mem=hot_mem, flash_limit=flash_limit,
                        input_mem=input_mem)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise _failure(res.stdout + res.stderr)
    usage = {}
    for line in res.stdout.splitlines():
        if line.startswith("flash:"):
            usage["flash"] = int(line.split()[1])
        elif line.startswith("sram:"):
            usage["ram_static"] = int(line.split()[1])
    return dict(elf=Path(build_dir) / "firmware.elf", log=res.stdout, **usage, **consts)
