"""The CH32V003 cycle model: its one home (../shared/mcu-measurement.md).

QingKe V2A at 48 MHz with one flash wait state. The emulator (``deploy.emulator``)
charges every executed basic block with ``block``, every taken branch with ``taken``
and every data read from flash with ``flash_data_read``; ``total`` turns the
instruction counts by class into cycles with the same numbers, and ``terms`` splits
them into the groups chapter 15 plots.

>>> m = CH32V003
>>> m.block([(0, 4, "alu", None), (4, 2, "load", None), (6, 4, "jump", None)], in_flash=True)
10
>>> m.taken(in_flash=True), m.taken(in_flash=False)
(4, 2)
>>> m.total({"alu": 10, "load": 2, "branch": 3, "branch_taken": 1, "flash_data_reads": 2})
21
"""
from dataclasses import dataclass, fields

CLASSES = ("alu", "load", "store", "branch", "jump")


@dataclass(frozen=True)
class CycleModel:
    alu: int = 1              # cycles per instruction class
    load: int = 2
    store: int = 2
    branch: int = 1           # not taken
    jump: int = 3             # jal / jalr
    taken_branch: int = 2     # extra per taken branch (3 in all)
    flash_data_read: int = 1  # extra per data load from flash
    flash_code32: int = 1     # extra per 32-bit instruction fetched from flash
    flash_taken: int = 2      # extra per taken branch or jump whose code runs from flash
    mhz: int = 48

    def cost(self, cls: str) -> int:
        return getattr(self, cls)

    def block(self, ins, in_flash: bool) -> int:
        """Static cycles of a basic block [(address, length, class, bad)] (its last
        instruction a jump counts as taken; a branch is charged by ``taken``)."""
        c = sum(self.cost(cls) for _, _, cls, _ in ins)
        if in_flash:
            c += self.flash_code32 * sum(1 for _, ln, _, _ in ins if ln == 4)
            c += self.flash_taken * (ins[-1][2] == "jump")
        return c

    def taken(self, in_flash: bool) -> int:
        """Extra cycles of one taken branch."""
        return self.taken_branch + (self.flash_taken if in_flash else 0)

    def terms(self, by: dict) -> dict:
        """Cycles by group from counts by class (``Emulator.take_counts().by_class``)."""
        n = lambda k: by.get(k, 0)
        return {"ALU": n("alu") * self.alu,
                "load/store": n("load") * self.load + n("store") * self.store,
                "branches and jumps": n("branch") * self.branch + n("jump") * self.jump
                + self.taken_branch * n("branch_taken"),
                "flash wait states": self.flash_data_read * n("flash_data_reads")
                + self.flash_code32 * n("flash_code32") + self.flash_taken * n("flash_taken")}

    def total(self, by: dict) -> int:
        return sum(self.terms(by).values())

    def ms(self, cycles: float) -> float:
        return cycles / (self.mhz * 1000)

    def table(self) -> list:
        """The model as rows (term, cycles), for the book."""
        return [dict(term=f.name, cycles=getattr(self, f.name)) for f in fields(self)]


CH32V003 = CycleModel()
