"""``bitnet mcu``: the CH32V003 firmware, built for real and run in an RV32 emulator.

    build    ``make -C firmware`` with Debian's riscv64-unknown-elf-gcc (rv32ec/ilp32e)
             for one exported model; the Makefile's size check (16 KB flash, 2 KB SRAM)
             runs as part of the build.
    run      Unicorn (RV32) with the CH32V003 memory map: flash 0x00000000, SRAM
             0x20000000. Execution stops at the firmware's ``bn_fw_sync`` hook; the
             harness writes the next image into ``bn_fw_io.input`` and reads the last
             result (and, in check runs, every FC layer's accumulators from
             ``bn_fw_trace``, emulator-only memory outside SRAM).
    check    every image: prediction and every accumulator against the host C engine
             (row layout, the reference kernels), 0 mismatches expected.
    count    a block hook decodes every executed instruction once: anything outside
             RV32EC (M/F/A extensions, registers x16-x31) is an error; instructions are
             counted by class, taken branches from the block sequence, flash data reads
             by a memory hook, and the cycle model of ../shared/mcu-measurement.md
             applied (QingKe V2A at 48 MHz, 1 flash wait state):

               ALU 1, load/store 2, branch not taken 1, taken branch / jal / jalr 3,
               + 1 per data read from flash, code in flash: + 1 per 32-bit instruction
               and + 2 per taken branch or jump.

Cycles are estimates from that model; instruction counts are exact for the emulator.
"""
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .export import COLS_TYPES, TYPE_IDS, ExportError, write_header

ROOT = Path(__file__).resolve().parent.parent
FW_DIR = ROOT / "firmware"
FLASH_BASE, RAM_BASE, DEBUG_BASE = 0x0, 0x20000000, 0x40000000
FLASH_LIMIT, RAM_LIMIT = 16384, 2048
MHZ = 48
CYCLES = {"alu": 1, "load": 2, "store": 2, "branch": 1, "jump": 3}
STACK_FILL = 0xA5


# entry points of an FC layer's kernel: their entries split a round into layers
FC_ENTRIES = ("bn_fc", "bn_fc_cols")


class McuError(RuntimeError):
    pass


def cross_prefix() -> str:
    return os.environ.get("CROSS", "riscv64-unknown-elf-")


def have_toolchain() -> bool:
    return shutil.which(cross_prefix() + "gcc") is not None


# ------------------------------------------------------------------ build

def fw_constants(exp) -> dict:
    """Make variables for one model: buffer sizes as bn_scratch_bytes / bn_trace_len
    compute them, and the kernels it needs (types, layouts, conv)."""
    convs = [l for l in exp.layers if l.kind != "fc"]
    fcs = [l for l in exp.layers if l.kind == "fc"]
    features = fcs[0].n_in if convs else 0
    max_units = max([features] + [l.n_out for l in fcs])
    maps, side = [0, 0], convs[0].n_in if convs else 0   # bn_network.c: ping-pong A, B
    sizes = []
    for l in convs:
        side -= 2
        sizes.append(side * side)
        if l.pool:
            side //= 2
            sizes.append(side * side)
    for i, n in enumerate(sizes):
        maps[i % 2] = max(maps[i % 2], n)
    scratch = max_units * 4 + (maps[0] + maps[1]) * 2 + max_units
    trace = features + sum(l.n_out for l in fcs)
    wtypes = 0
    for l in exp.layers:
        wtypes |= 1 << TYPE_IDS[l.wtype]
    layouts = (1 if any(l.layout == "rows" for l in fcs) else 0) | \
              (2 if any(l.layout == "cols" for l in fcs) else 0)
    return dict(INPUT=exp.input_len, CLASSES=exp.n_classes, SCRATCH=scratch, TRACE=trace,
                WTYPES=hex(wtypes), LAYOUTS=layouts, CONV=int(bool(convs)))


def build(exp, header, kernel: str, build_dir, ram_size: int = RAM_LIMIT,
          ram_limit: int = RAM_LIMIT, hot_mem: str = "ram",
          flash_limit: int = FLASH_LIMIT, input_mem: str = "flash") -> dict:
    """Build the firmware; returns dict(elf, flash, ram_static, log). A size overflow
    is an McuError carrying the Makefile's message (limit and overage). hot_mem
    'flash' keeps the fast kernels out of SRAM (firmware/Makefile HOT_MEM); input_mem
    'ram' puts the test image in SRAM instead of flash (INPUT_MEM)."""
    if not have_toolchain():
        raise McuError(f"{cross_prefix()}gcc not found: install the RISC-V toolchain "
                       f"(`make toolchain`, or apt-get install gcc-riscv64-unknown-elf "
                       f"binutils-riscv64-unknown-elf picolibc-riscv64-unknown-elf)")
    build_dir = Path(build_dir)
    consts = fw_constants(exp)
    cmd = ["make", "--no-print-directory", "-C", str(FW_DIR), f"MODEL={Path(header).resolve()}",
           f"KERNEL={kernel}", f"BUILD={build_dir.resolve()}", f"RAM_SIZE={ram_size}",
           f"RAM_LIMIT={ram_limit}", f"CROSS={cross_prefix()}", f"HOT_MEM={hot_mem}",
           f"FLASH_LIMIT={flash_limit}", f"INPUT_MEM={input_mem}"]
    cmd += [f"{k}={v}" for k, v in consts.items()]
    res = subprocess.run(cmd, capture_output=True, text=True)
    log = res.stdout + res.stderr
    if res.returncode:
        msg = [l for l in log.splitlines() if "error" in l.lower() or l.startswith(("flash:", "sram:"))]
        raise McuError("firmware build failed:\n" + "\n".join(msg or log.splitlines()[-20:]))
    usage = {}
    for line in res.stdout.splitlines():
        if line.startswith("flash:"):
            usage["flash"] = int(line.split()[1])
        elif line.startswith("sram:"):
            usage["ram_static"] = int(line.split()[1])
    return dict(elf=build_dir / "firmware.elf", log=res.stdout, **usage, **consts)


# ------------------------------------------------------------------ RV32EC decoding

def decode(code: bytes, addr0: int):
    """[(address, length, class, bad reason or None)] of the instructions in code."""
    out, i = [], 0
    while i + 2 <= len(code):
        h = int.from_bytes(code[i:i + 2], "little")
        if h & 3 == 3:
            w = int.from_bytes(code[i:i + 4], "little")
            out.append((addr0 + i, 4, *_decode32(w)))
            i += 4
        else:
            out.append((addr0 + i, 2, *_decode16(h)))
            i += 2
    return out


def _regs_bad(*regs):
    bad = [r for r in regs if r > 15]
    return f"register x{bad[0]} (RV32E has x0-x15)" if bad else None


def _decode32(w: int):
    op, rd, f3 = w & 0x7F, (w >> 7) & 31, (w >> 12) & 7
    rs1, rs2, f7 = (w >> 15) & 31, (w >> 20) & 31, w >> 25
    if op in (0x37, 0x17):
        return "alu", _regs_bad(rd)
    if op == 0x6F:
        return "jump", _regs_bad(rd)
    if op == 0x67:
        return "jump", _regs_bad(rd, rs1)
    if op == 0x63:
        return "branch", _regs_bad(rs1, rs2)
    if op == 0x03:
        return "load", _regs_bad(rd, rs1)
    if op == 0x23:
        return "store", _regs_bad(rs1, rs2)
    if op == 0x13:
        return "alu", _regs_bad(rd, rs1)
    if op == 0x33:
        if f7 == 1:
            return "alu", f"M extension (mul/div) 0x{w:08x}: the CH32V003 has no multiplier"
        return "alu", _regs_bad(rd, rs1, rs2)
    if op == 0x0F:
        return "alu", None
    if op == 0x73:
        return "alu", _regs_bad(rd, rs1) if f3 in (1, 2, 3) else _regs_bad(rd)
    return "alu", f"opcode 0x{op:02x} (0x{w:08x}) is not RV32EC"


def _decode16(h: int):
    q, f3 = h & 3, h >> 13
    rd, rs2 = (h >> 7) & 31, (h >> 2) & 31
    if q == 0:
        return {0: ("alu", None), 2: ("load", None), 6: ("store", None)}.get(
            f3, ("alu", f"compressed float load/store 0x{h:04x} is not RV32EC"))
    if q == 1:
        if f3 in (0, 2, 3):
            return "alu", _regs_bad(rd)
        if f3 == 4:
            return "alu", None
        if f3 in (1, 5):
            return "jump", None
        return "branch", None
    if f3 == 0:
        return "alu", _regs_bad(rd)
    if f3 == 2:
        return "load", _regs_bad(rd)
    if f3 == 4:
        bit12 = (h >> 12) & 1
        if rs2 == 0:
            if bit12 and rd == 0:
                return "alu", "c.ebreak"
            return "jump", _regs_bad(rd)
        return "alu", _regs_bad(rd, rs2)
    if f3 == 6:
        return "store", _regs_bad(rs2)
    return "alu", f"compressed float op 0x{h:04x} is not RV32EC"


# ------------------------------------------------------------------ emulator

@dataclass
class Counts:
    instructions: int = 0
    cycles: int = 0
    by_class: dict = None


class Emulator:
    """The firmware in Unicorn; ``run(image, trace)`` runs one round."""

    def __init__(self, elf, ram_size: int = RAM_LIMIT):
        from elftools.elf.elffile import ELFFile
        from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV32, Uc
        with open(elf, "rb") as f:
            ef = ELFFile(f)
            segs = [(s["p_paddr"], s.data()) for s in ef.iter_segments()
                    if s["p_type"] == "PT_LOAD" and s["p_filesz"]]
            symtab = ef.get_section_by_name(".symtab")
            self.sym = {s.name: s["st_value"] for s in symtab.iter_symbols() if s.name}
            # function address ranges, for the per-function profile
            self.funcs = sorted((s["st_value"], s["st_value"] + max(s["st_size"], 1), s.name)
                                for s in symtab.iter_symbols()
                                if s.name and s["st_info"]["type"] == "STT_FUNC")
        self.uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        top = max(a + len(d) for a, d in segs if a < RAM_BASE)
        self.flash_size = max(FLASH_LIMIT, -(-top // 4096) * 4096)
        self.uc.mem_map(FLASH_BASE, self.flash_size)
        self.uc.mem_map(RAM_BASE, max(4096, -(-ram_size // 4096) * 4096))
        self.uc.mem_map(DEBUG_BASE, 64 * 1024)
        for a, d in segs:
            if a < RAM_BASE:
                self.uc.mem_write(a, d)
        self.sync = self.sym["bn_fw_sync"]
        self.io = self.sym["bn_fw_io"]
        self.estack = self.sym["_estack"]
        self.bss_end = self.sym["__bss_end"]
        from unicorn.riscv_const import UC_RISCV_REG_PC, UC_RISCV_REG_RA, UC_RISCV_REG_SP
        self._pc, self._ra, self._sp = UC_RISCV_REG_PC, UC_RISCV_REG_RA, UC_RISCV_REG_SP
        self.uc.emu_start(self.sym["_start"], self.sync)            # start-up, first sync
        sp = self.uc.reg_read(self._sp)
        self.uc.mem_write(self.bss_end, bytes([STACK_FILL]) * (sp - self.bss_end))
        self._blocks, self._counting = {}, False

    # io layout (main.c): [input[INPUT] when INPUT_MEM=ram] | flags | status | pred |
    # rounds | logits; with INPUT_MEM=flash the image is bn_fw_input, in flash
    def _io_off(self, n_in):
        return 0 if "bn_fw_input" in self.sym else -(-n_in // 4) * 4

    def run(self, image: np.ndarray, trace_len: int = 0, n_classes: int = 10):
        image = np.asarray(image, np.int8)
        off = self._io_off(image.size)
        self.uc.mem_write(self.sym.get("bn_fw_input", self.io), image.tobytes())
        self.uc.mem_write(self.io + off, int(bool(trace_len)).to_bytes(4, "little"))
        ra = self.uc.reg_read(self._ra)
        self.uc.emu_start(ra, self.sync)
        raw = bytes(self.uc.mem_read(self.io + off + 4, 12 + 4 * n_classes))
        status = int.from_bytes(raw[0:4], "little", signed=True)
        pred = int.from_bytes(raw[4:8], "little")
        logits = np.frombuffer(raw[12:], np.int32).copy()
        tr = None
        if trace_len:
            tr = np.frombuffer(bytes(self.uc.mem_read(self.sym["bn_fw_trace"], 4 * trace_len)),
                               np.int32).copy()
        return status, pred, logits, tr

    def stack_peak(self) -> int:
        """Bytes of stack ever used: below the stack top, the first byte not the fill."""
        mem = bytes(self.uc.mem_read(self.bss_end, self.estack - self.bss_end))
        i = 0
        while i < len(mem) and mem[i] == STACK_FILL:
            i += 1
        if i == 0:
            raise McuError(f"stack overflow: the stack reached the end of .bss "
                           f"(0x{self.bss_end:08x}); the firmware does not fit the SRAM")
        return len(mem) - i

    # ---- counting
    def start_counting(self, markers=()):
        """Count from now on. ``markers``: function names whose entry is recorded with
        the running cycle count (``self.marks``: [(name, cycles)] per round), which
        splits a round into layers."""
        from unicorn import UC_HOOK_BLOCK, UC_HOOK_MEM_READ
        self.flash_reads = 0
        self.block_count, self.taken, self.block_reads = {}, {}, {}
        self._prev = None
        self.bad = []
        self.cyc = 0                     # running cycle count (same model as take_counts)
        self.marks = []
        self._markers = {self.sym[m]: m for m in markers if m in self.sym}
        self.uc.hook_add(UC_HOOK_BLOCK, self._on_block)
        self.uc.hook_add(UC_HOOK_MEM_READ, self._on_read, begin=FLASH_BASE,
                         end=FLASH_BASE + self.flash_size - 1)
        self.uc.ctl_flush_tb()          # hooks apply to code translated from now on

    def _on_block(self, uc, address, size, _):
        prev = self._prev
        if prev is not None and prev[0] and address != prev[1]:
            self.taken[prev[2]] = self.taken.get(prev[2], 0) + 1
            self.cyc += 4 if prev[2][0] < RAM_BASE else 2
        info = self._blocks.get((address, size))
        if info is None:
            ins = decode(bytes(uc.mem_read(address, size)), address)
            for a, n, cls, bad in ins:
                if bad:
                    self.bad.append(f"0x{a:08x}: {bad}")
            last = ins[-1]
            in_flash = address < RAM_BASE
            static = sum(CYCLES[c] for _, _, c, _ in ins)
            if in_flash:
                static += sum(1 for _, ln, _, _ in ins if ln == 4) + 2 * (last[2] == "jump")
            info = self._blocks[(address, size)] = (last[2] == "branch", address + size,
                                                    (address, size), ins, static)
        self.block_count[info[2]] = self.block_count.get(info[2], 0) + 1
        self.cyc += info[4]
        if address in self._markers:
            self.marks.append((self._markers[address], self.cyc - info[4]))
        self._prev = info

    def _on_read(self, uc, access, address, size, value, _):
        self.flash_reads += 1
        self.cyc += 1
        if self._prev is not None:       # the block being executed
            k = self._prev[2]
            self.block_reads[k] = self.block_reads.get(k, 0) + 1

    def function_of(self, address) -> str:
        import bisect
        i = bisect.bisect_right(self.funcs, (address, 1 << 40, "")) - 1
        if i >= 0 and self.funcs[i][0] <= address < self.funcs[i][1]:
            return self.funcs[i][2]
        return "?"

    def profile(self) -> dict:
        """{function: [instructions, cycles]} since the last take_counts (call before
        it): every executed block charged to the function it lies in."""
        prof = {}
        for key, n in self.block_count.items():
            ins, static = self._blocks[key][3], self._blocks[key][4]
            f = prof.setdefault(self.function_of(key[0]), [0, 0])
            f[0] += n * len(ins)
            f[1] += n * static + self.block_reads.get(key, 0)
        for key, n in self.taken.items():
            prof.setdefault(self.function_of(key[0]), [0, 0])[1] += n * (4 if key[0] < RAM_BASE else 2)
        return prof

    def take_counts(self) -> Counts:
        """Counts since the last call (the block of the final stop is excluded)."""
        by = {c: 0 for c in ("alu", "load", "store", "branch", "jump")}
        by.update(branch_taken=0, flash_code32=0, flash_taken=0, flash_data_reads=self.flash_reads)
        for key, n in self.block_count.items():
            ins = self._blocks[key][3]
            in_flash = key[0] < RAM_BASE
            for a, ln, cls, bad in ins:
                by[cls] += n
                if in_flash and ln == 4:
                    by["flash_code32"] += n
            if in_flash and ins[-1][2] == "jump":
                by["flash_taken"] += n
        for key, n in self.taken.items():
            by["branch_taken"] += n
            if key[0] < RAM_BASE:
                by["flash_taken"] += n
        instr = sum(by[c] for c in CYCLES)
        cycles = sum(by[c] * CYCLES[c] for c in CYCLES) + 2 * by["branch_taken"] \
            + by["flash_data_reads"] + by["flash_code32"] + 2 * by["flash_taken"]
        self.block_count, self.taken, self.flash_reads, self.block_reads = {}, {}, 0, {}
        self._prev = None
        return Counts(instr, cycles, by)


# ------------------------------------------------------------------ the command

def _try_fit(exp, header, kernel, build_dir, image, hot_mem):
    """(fw, emu) for a 2 KB build, or the McuError / emulator fault that says it does
    not fit: a static overflow at link time, or a stack that runs into .bss."""
    from unicorn import UcError
    fw = build(exp, header, kernel, build_dir, hot_mem=hot_mem)
    emu = Emulator(fw["elf"], RAM_LIMIT)
    try:
        emu.run(image, 0, exp.n_classes)        # one image, then look at the stack fill
        emu.stack_peak()
    except UcError as e:
        raise McuError(f"emulator fault ({e}): stack overflow into .bss") from e
    return fw, emu


def _fitting_build(exp, header, kernel, build_dir, image, log):
    """The firmware as it fits the CH32V003: hot code in SRAM; for the fast kernels,
    if SRAM is short, hot code in flash; else (not fitting) hot code in SRAM on a
    virtual chip with 64 KB of SRAM, measured and flagged. -> fw, emu, fits, hot_mem"""
    tries = ["ram", "flash"] if kernel == "fast" else ["ram"]
    err = None
    for hot_mem in tries:
        try:
            fw, emu = _try_fit(exp, header, kernel, build_dir, image, hot_mem)
            if err is not None:
                log(f"note: with the fast kernels in SRAM it does not fit ({err}); "
                    f"hot code in flash")
            return fw, emu, True, hot_mem
        except McuError as e:
            msg = str(e)
            if "overflow" not in msg:
                raise
            err = "; ".join(l.removeprefix("error: ") for l in msg.splitlines()
                            if "overflow" in l)
            if "flash overflow" in msg:
                break               # more SRAM would not help
    log(f"note: {err}; measuring on a virtual chip with 64 KB of SRAM and 1 MB of "
        f"flash (does not fit)")
    fw = build(exp, header, kernel, build_dir, ram_size=65536, ram_limit=65536,
               flash_limit=1 << 20)
    return fw, Emulator(fw["elf"], 65536), False, "ram"


def mcu_run(run_dir, kernel: str = "fast", images: int = 100, timed: int = None,
            hooks: bool = True, build_dir=None, data=None, log=print) -> dict:
    """Build the firmware for RUN_DIR's model, run ``images`` MNIST test images in the
    emulator, check prediction and every accumulator against the host engine, count
    instructions and cycles on ``timed`` images (default all; 0 or hooks=False: none)."""
    from . import intmodel
    from .data import load_mnist
    from .engine import EngineModel
    from .export import export_run, load_model_file
    if kernel not in ("baseline", "fast"):
        raise McuError(f"kernel {kernel!r}: valid kernels are baseline, fast")
    cfg, _ = load_model_file(run_dir)
    if data is None:
        data = load_mnist(cfg.data_root or None)
    build_dir = Path(build_dir) if build_dir else Path(run_dir) / "mcu" / kernel
    build_dir.mkdir(parents=True, exist_ok=True)
    _, _, ref_exp = export_run(run_dir, data, layout="rows")
    exp = ref_exp if kernel == "baseline" else export_run(run_dir, data, layout="cols")[2]
    ref_h = write_header(ref_exp, build_dir / "model_rows.h", str(run_dir))
    header = write_header(exp, build_dir / "model.h", str(run_dir))
    host = EngineModel(ref_h, ref_exp.model_id)
    if fw_constants(exp)["SCRATCH"] != host.scratch_bytes:   # two copies of one formula
        raise McuError(f"firmware scratch {fw_constants(exp)['SCRATCH']} bytes, the engine "
                       f"needs {host.scratch_bytes}: fw_constants is out of date")
    x = intmodel.input_codes(data.test_x[:images]).astype(np.int8)
    fw, emu, fits, hot_mem = _fitting_build(exp, header, kernel, build_dir, x[0], log)
    y = data.test_y[:images].numpy()
    ref_pred, ref_logits = host.run(x)
    tl = host.trace_len
    mismatch, mismatch_layers, correct = 0, 0, 0
    for i in range(len(x)):                        # check run: no instruction hooks
        st, pred, logits, tr = emu.run(x[i], tl, exp.n_classes)
        ref_tr = host.trace(x[i])
        if st != 0:
            raise McuError(f"image {i}: the firmware returned bn_status {st}")
        bad = pred != ref_pred[i] or not np.array_equal(logits, ref_logits[i])
        bad_layers = not np.array_equal(tr, ref_tr)
        mismatch += int(bad or bad_layers)
        mismatch_layers += int(bad_layers)
        correct += int(pred == y[i])
    timed = len(x) if timed is None else min(timed, len(x))
    counts = []
    rv32ec_ok = None
    layer_cycles, prof = [], {}
    if hooks and timed:
        emu.start_counting(markers=FC_ENTRIES)
        for i in range(timed):
            emu.marks, c0 = [], emu.cyc
            emu.run(x[i], 0, exp.n_classes)
            for f, (n_i, n_c) in emu.profile().items():
                p = prof.setdefault(f, [0, 0])
                p[0] += n_i
                p[1] += n_c
            counts.append(emu.take_counts())
            bounds = [c0] + [c for _, c in emu.marks] + [emu.cyc]
            layer_cycles.append(np.diff(bounds))
        if emu.bad:
            raise McuError("instructions outside RV32EC executed:\n" + "\n".join(emu.bad[:10]))
        rv32ec_ok = True
    stack = emu.stack_peak()
    ram = fw["ram_static"] + stack
    fits = fits and ram <= RAM_LIMIT and fw["flash"] <= FLASH_LIMIT
    r = dict(run_dir=str(run_dir), kernel=kernel, images=len(x), timed_images=len(counts),
             hot_code=("SRAM" if hot_mem == "ram" else "flash"),
             flash_bytes=fw["flash"], ram_bytes=ram, ram_static=fw["ram_static"],
             stack_bytes=stack, fits_ch32v003=fits,
             mismatch_vs_host=mismatch, mismatch_layers=mismatch_layers,
             accuracy=100.0 * correct / len(x), rv32ec_only=rv32ec_ok,
             weight_bytes=int(sum(l.packed.size * 4 for l in exp.layers)))
    if counts:
        r["instructions_mean"] = float(np.mean([c.instructions for c in counts]))
        r["cycles_mean"] = float(np.mean([c.cycles for c in counts]))
        r["cycles_min"] = int(min(c.cycles for c in counts))
        r["cycles_max"] = int(max(c.cycles for c in counts))
        r["ms_at_48mhz"] = r["cycles_mean"] / (MHZ * 1000)
        by = {}
        for c in counts:
            for k, v in c.by_class.items():
                by[k] = by.get(k, 0) + v
        r["by_class_mean"] = {k: v / len(counts) for k, v in by.items()}
        # where the cycles go: per function (instructions, cycles), and per layer: the
        # part before the first FC kernel (input, conv layers), then each FC layer
        # from its kernel's entry to the next one's (its ShiftNorm included)
        r["profile_mean"] = {f: (v[0] / len(counts), v[1] / len(counts))
                             for f, v in sorted(prof.items(), key=lambda kv: -kv[1][1])}
        if len({len(l) for l in layer_cycles}) == 1:
            r["layer_cycles_mean"] = [float(v) for v in np.mean(layer_cycles, axis=0)]
    else:
        r["instructions_mean"] = r["cycles_mean"] = None
    return r


def format_result(r: dict) -> str:
    lines = [f"{r['run_dir']}: kernel {r['kernel']}, {r['images']} test images "
             f"({r['accuracy']:.2f}% correct)",
             f"  flash {r['flash_bytes']} of {FLASH_LIMIT} bytes (weights {r['weight_bytes']}), "
             f"SRAM {r['ram_bytes']} of {RAM_LIMIT} bytes ({r['ram_static']} static + "
             f"{r['stack_bytes']} stack peak): {'fits' if r['fits_ch32v003'] else 'DOES NOT FIT'}"
             f" the CH32V003" + ("" if r['fits_ch32v003'] else
                                 " (measured on a virtual chip with more SRAM / flash)")
             + (f"; hot code in {r['hot_code']}" if r.get('hot_code') else ""),
             f"  mismatches vs host engine: {r['mismatch_vs_host']} (per-layer accumulators "
             f"differ on {r['mismatch_layers']})"]
    if r.get("cycles_mean") is not None:
        lines.append(f"  {r['instructions_mean']:.0f} instructions, {r['cycles_mean']:.0f} cycles "
                     f"(model estimate) = {r['ms_at_48mhz']:.2f} ms at 48 MHz, mean of "
                     f"{r['timed_images']} images; RV32EC only: {r['rv32ec_only']}")
    return "\n".join(lines)
