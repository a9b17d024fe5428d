"""RV32EC instruction decoding: the class of each instruction (for the cycle model)
and whether it lies outside RV32EC (M/F/A extensions, registers x16-x31)."""


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


_OPCODES = {0x37: ("alu", "d"), 0x17: ("alu", "d"), 0x6F: ("jump", "d"), 0x67: ("jump", "d1"),
            0x63: ("branch", "12"), 0x03: ("load", "d1"), 0x23: ("store", "12"),
            0x13: ("alu", "d1"), 0x0F: ("alu", "")}


def _decode32(w: int):
    op, rd, f3 = w & 0x7F, (w >> 7) & 31, (w >> 12) & 7
    rs1, rs2, f7 = (w >> 15) & 31, (w >> 20) & 31, w >> 25
    regs = {"d": rd, "1": rs1, "2": rs2}
    if op in _OPCODES:
        cls, used = _OPCODES[op]
        return cls, _regs_bad(*(regs[r] for r in used))
    if op == 0x33:
        if f7 == 1:
            return "alu", f"M extension (mul/div) 0x{w:08x}: the CH32V003 has no multiplier"
        return "alu", _regs_bad(rd, rs1, rs2)
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
