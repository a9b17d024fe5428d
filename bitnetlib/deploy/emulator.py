"""The CH32V003 firmware in an RV32 emulator (Unicorn), with instruction and cycle counts.

    run      the CH32V003 memory map: flash 0x00000000, SRAM 0x20000000. Execution
             stops at the firmware's ``bn_fw_sync`` hook; the harness writes the next
             image, reads the last result (and, in check runs, every FC layer's
             accumulators from ``bn_fw_trace``, emulator-only memory outside SRAM).
             Where each field lies is read from the ELF (``bn_fw_io_layout``, declared
             once in firmware/main.c).
    count    a block hook decodes every executed instruction once (``rv32ec``):
             anything outside RV32EC is an error; instructions are counted by class,
             taken branches from the block sequence, flash data reads by a memory
             hook, and cycles charged by the cycle model (``cycles.CH32V003``).

Cycles are estimates from that model; instruction counts are exact for the emulator.
"""
import bisect
from dataclasses import dataclass

import numpy as np

from .cycles import CH32V003, CLASSES
from .firmware import FLASH_LIMIT, RAM_LIMIT, McuError
from .rv32ec import decode

FLASH_BASE, RAM_BASE, DEBUG_BASE = 0x0, 0x20000000, 0x40000000
STACK_FILL = 0xA5
# the words of bn_fw_io_layout (firmware/main.c), in order
BN_FW_LAYOUT_FIELDS = ("input", "flags", "status", "pred", "rounds", "logits", "classes",
                       "trace", "input_len")
IN_FLASH = 0xFFFFFFFF
# Wall-clock limit of one round (start-up to the first sync, or sync to sync): a firmware
# that never returns (e.g. hot code overwritten by the stack) is an McuError, not a hang.
# The slowest round measured (the baseline CNN, timed) takes about 6 s; a time limit (Unicorn's
# timer) costs nothing per instruction, unlike an instruction count limit.
ROUND_SECONDS = 120


@dataclass
class Counts:
    instructions: int = 0
    cycles: int = 0
    by_class: dict = None


def read_elf(elf):
    """(loadable segments, symbols, functions, I/O layout) of a firmware ELF."""
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        ef = ELFFile(f)
        segs = [(s["p_paddr"], s.data()) for s in ef.iter_segments()
                if s["p_type"] == "PT_LOAD" and s["p_filesz"]]
        symtab = ef.get_section_by_name(".symtab")
        sym = {s.name: s["st_value"] for s in symtab.iter_symbols() if s.name}
        funcs = sorted((s["st_value"], s["st_value"] + max(s["st_size"], 1), s.name)
                       for s in symtab.iter_symbols()
                       if s.name and s["st_info"]["type"] == "STT_FUNC")
        sec = ef.get_section_by_name(".bn_fw_layout")
        if sec is None:
            raise McuError(f"{elf}: no .bn_fw_layout section (firmware/main.c bn_fw_io_layout)")
        words = np.frombuffer(sec.data(), "<u4")
    return segs, sym, funcs, dict(zip(BN_FW_LAYOUT_FIELDS, (int(w) for w in words)))


class Emulator:
    """The firmware in Unicorn; ``run(image, trace)`` runs one round."""

    def __init__(self, elf, ram_size: int = RAM_LIMIT, model=CH32V003):
        from unicorn import UC_ARCH_RISCV, UC_MODE_RISCV32, Uc
        from unicorn.riscv_const import UC_RISCV_REG_RA, UC_RISCV_REG_SP
        segs, self.sym, self.funcs, self.layout = read_elf(elf)
        self.model = model
        self.uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        top = max(a + len(d) for a, d in segs if a < RAM_BASE)
        self.flash_size = max(FLASH_LIMIT, -(-top // 4096) * 4096)
        self.uc.mem_map(FLASH_BASE, self.flash_size)
        self.uc.mem_map(RAM_BASE, max(4096, -(-ram_size // 4096) * 4096))
        self.uc.mem_map(DEBUG_BASE, 64 * 1024)
        for a, d in segs:
            if a < RAM_BASE:
                self.uc.mem_write(a, d)
        self.sync, self.io = self.sym["bn_fw_sync"], self.sym["bn_fw_io"]
        self.estack, self.bss_end = self.sym["_estack"], self.sym["__bss_end"]
        self._ra, self._sp = UC_RISCV_REG_RA, UC_RISCV_REG_SP
        self.until_sync(self.sym["_start"])                        # start-up, first sync
        sp = self.uc.reg_read(self._sp)
        self.uc.mem_write(self.bss_end, bytes([STACK_FILL]) * (sp - self.bss_end))
        self._blocks, self._hooked = {}, False

    def until_sync(self, start: int) -> None:
        """Run from ``start`` until the firmware reaches ``bn_fw_sync``; McuError when it
        does not within ROUND_SECONDS (a hang) or stops elsewhere."""
        from unicorn.riscv_const import UC_RISCV_REG_PC
        self.uc.emu_start(start, self.sync, timeout=ROUND_SECONDS * 1_000_000)
        pc = self.uc.reg_read(UC_RISCV_REG_PC)
        if pc != self.sync:
            raise McuError(f"the firmware did not reach bn_fw_sync within {ROUND_SECONDS} s "
                           f"(stopped at {pc:#010x}): it hangs")

    def _field(self, name: str) -> int:
        return self.io + self.layout[name]

    def input_address(self) -> int:
        off = self.layout["input"]
        return self.sym["bn_fw_input"] if off == IN_FLASH else self.io + off

    def run(self, image: np.ndarray, trace_len: int = 0, n_classes: int = 10):
        """One image: (bn_status, prediction, logits, trace or None)."""
        image = np.asarray(image, np.int8)
        self.uc.mem_write(self.input_address(), image.tobytes())
        self.uc.mem_write(self._field("flags"), int(bool(trace_len)).to_bytes(4, "little"))
        self.until_sync(self.uc.reg_read(self._ra))
        word = lambda name: bytes(self.uc.mem_read(self._field(name), 4))
        status = int.from_bytes(word("status"), "little", signed=True)
        pred = int.from_bytes(word("pred"), "little")
        logits = np.frombuffer(bytes(self.uc.mem_read(self._field("logits"), 4 * n_classes)),
                               np.int32).copy()
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
        self._reset_counts()
        self.bad, self.cyc, self.marks = [], 0, []      # cyc: running cycle count
        self._markers = {self.sym[m]: m for m in markers if m in self.sym}
        self.uc.hook_add(UC_HOOK_BLOCK, self._on_block)
        self.uc.hook_add(UC_HOOK_MEM_READ, self._on_read, begin=FLASH_BASE,
                         end=FLASH_BASE + self.flash_size - 1)
        self.uc.ctl_flush_tb()          # hooks apply to code translated from now on

    def _reset_counts(self):
        self.block_count, self.taken, self.flash_reads, self.block_reads = {}, {}, 0, {}
        self._prev = None

    def _block_info(self, address, size):
        """(ends in a branch, fall-through address, key, instructions, static cycles)."""
        ins = decode(bytes(self.uc.mem_read(address, size)), address)
        self.bad += [f"0x{a:08x}: {bad}" for a, _, _, bad in ins if bad]
        static = self.model.block(ins, in_flash=address < RAM_BASE)
        return ins[-1][2] == "branch", address + size, (address, size), ins, static

    def _on_block(self, uc, address, size, _):
        prev = self._prev
        if prev is not None and prev[0] and address != prev[1]:      # branch taken
            self.taken[prev[2]] = self.taken.get(prev[2], 0) + 1
            self.cyc += self.model.taken(in_flash=prev[2][0] < RAM_BASE)
        info = self._blocks.get((address, size))
        if info is None:
            info = self._blocks[(address, size)] = self._block_info(address, size)
        self.block_count[info[2]] = self.block_count.get(info[2], 0) + 1
        self.cyc += info[4]
        if address in self._markers:
            self.marks.append((self._markers[address], self.cyc - info[4]))
        self._prev = info

    def _on_read(self, uc, access, address, size, value, _):
        self.flash_reads += 1
        self.cyc += self.model.flash_data_read
        if self._prev is not None:       # the block being executed
            k = self._prev[2]
            self.block_reads[k] = self.block_reads.get(k, 0) + 1

    def function_of(self, address) -> str:
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
            f[1] += n * static + self.model.flash_data_read * self.block_reads.get(key, 0)
        for key, n in self.taken.items():
            f = prof.setdefault(self.function_of(key[0]), [0, 0])
            f[1] += n * self.model.taken(in_flash=key[0] < RAM_BASE)
        return prof

    def take_counts(self) -> Counts:
        """Counts since the last call (the block of the final stop is excluded)."""
        by = {c: 0 for c in CLASSES}
        by.update(branch_taken=0, flash_code32=0, flash_taken=0, flash_data_reads=self.flash_reads)
        for key, n in self.block_count.items():
            ins = self._blocks[key][3]
            in_flash = key[0] < RAM_BASE
            for _, ln, cls, _ in ins:
                by[cls] += n
                by["flash_code32"] += n * (in_flash and ln == 4)
            by["flash_taken"] += n * (in_flash and ins[-1][2] == "jump")
        for key, n in self.taken.items():
            by["branch_taken"] += n
            by["flash_taken"] += n * (key[0] < RAM_BASE)
        instr = sum(by[c] for c in CLASSES)
        self._reset_counts()
        return Counts(instr, self.model.total(by), by)
