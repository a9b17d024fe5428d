/*
 * bn_kernels_rv32e.S - RV32EC version of tile4 (bn_kernels_fast.c), the inner
 * kernel of the 4-bit cols-layout FC layers (4bitsym, 4bit, FP130, NF4); selected
 * by the firmware build (-DBN_RUN4_ASM=1, KERNEL=fast), bit-exact with the C
 * version it replaces: the simulator checks every accumulator against the host
 * engine.
 *
 *   void bn_tile4_rv32e(const bn_tab4 *e, size_t k, size_t n_out, uint32_t *acc,
 *                       uint32_t zero);
 *
 * e: k entries of 36 bytes (bn_tab4: the column pointer, then the input's 16-entry
 * int16 product table t), 0 <= k. For each tile of 8 outputs (column word j of
 * every entry): the 8 accumulators are loaded (or set to 0 when zero != 0) into
 * registers, then for every entry m
 *     x = e[m].col[j];  acc[8j + o] += e[m].t[field o of x]   (o = 0..7)
 * with field o at bits 31-4o .. 28-4o, as a byte offset (x >> (27 - 4o)) & 30, the
 * last one (x << 1) & 30; then the 8 are stored. A last tile of n_out % 8 outputs
 * runs the same loop and loads and stores only its outputs (the padding fields of
 * its words go to registers that are never stored).
 *
 * Cost: per entry and tile 6 cycles for the column word (pointer, offset, flash
 * load) and 6 per output (srli, andi, add, lh, add); per tile and chunk ~50 for
 * the loads, stores and set-up. Registers: the 8 accumulators in s0 s1 t0 t1 t2
 * ra gp tp (ra gp tp s0 s1 saved and restored: nothing in the firmware runs
 * concurrently), the rest in a0-a5; the loop state that does not fit is on the
 * stack, read once per tile.
 */
#if BN_HOT_FLASH
    .section .text.bn_tile4_rv32e, "ax"
#else
    .section .ramfunc.bn_tile4_rv32e, "ax"  /* SRAM: no flash wait states */
#endif
    .option norelax                   /* fixed code size: the block checks below */
    .globl bn_tile4_rv32e
    .type bn_tile4_rv32e, @function
    .balign 4

#define A0 s0
#define A1 s1
#define A2 t0
#define A3 t1
#define A4 t2
#define A5 ra
#define A6 gp
#define A7 tp
#define F a5                          /* field / scratch (x8-x15: compressible) */
#define E a4                          /* entry pointer */
#define W a3                          /* column word */
#define OFF a2                        /* 4 * tile index: the word's offset in a column */
#define END a1                        /* end of the entries */
#define ACC a0                        /* the tile's accumulators */

/* stack frame */
#define FR_ESTART 20                  /* first entry (minus 36 when k is odd) */
#define FR_END 24                     /* e + 36 k */
#define FR_FULL 28                    /* acc + 4 * (n_out & ~7): end of the full tiles */
#define FR_ENTRY 32                   /* where the entry loop starts (k odd: 2nd half) */
#define FR_ZERO 36                    /* zero flag (cleared never: one call per chunk) */
#define FR_REM 40                     /* n_out % 8, 0 once the last tile is stored */
#define FRAME 44

/* output o of the tile: field extraction EXT into F, table lookup, accumulate */
#define LK(EXT, A, D) EXT; andi F, F, 30; add F, F, E; lh F, (D + 4)(F); add A, A, F
#define SR(n) srli F, W, n
/* one entry at E + D: its column word at OFF, then the tile's 8 outputs */
#define VISIT(D) \
    lw F, D(E); add F, F, OFF; lw W, 0(F); \
    LK(SR(27), A0, D); LK(SR(23), A1, D); LK(SR(19), A2, D); LK(SR(15), A3, D); \
    LK(SR(11), A4, D); LK(SR(7), A5, D); LK(SR(3), A6, D); LK(SL1, A7, D)
#define SL1 slli F, W, 1

bn_tile4_rv32e:
    addi sp, sp, -FRAME
    sw ra, 0(sp)
    sw gp, 4(sp)
    sw tp, 8(sp)
    sw s0, 12(sp)
    sw s1, 16(sp)
    sw a4, FR_ZERO(sp)
    slli F, a1, 5                     /* END = e + 36 k */
    slli t0, a1, 2
    add F, F, t0
    add F, F, a0
    sw F, FR_END(sp)
    la F, .Lfirst                     /* k even: from the first half, e */
    andi t0, a1, 1
    beqz t0, 1f
    addi a0, a0, -36                  /* k odd: from the second half, e - 36 */
    la F, .Lsecond
1:  bnez a1, 2f
    la F, .Lstore                     /* k = 0: no inputs (zero: stores zeros) */
2:  sw a0, FR_ESTART(sp)
    sw F, FR_ENTRY(sp)
    andi t0, a2, 7
    sw t0, FR_REM(sp)
    andi t0, a2, -8                   /* full tiles end at acc + 4 (n_out & ~7) */
    slli t0, t0, 2
    add t0, t0, a3
    sw t0, FR_FULL(sp)
    mv ACC, a3
    li OFF, 0
    bgeu ACC, t0, .Lpartial            /* n_out < 8: only the last tile */

.Ltile:
    lw F, FR_ZERO(sp)
    bnez F, .Lzero
    .option push
    .option norvc                     /* 4 bytes each: .Lpartial jumps into them */
.Lload:
    lw A7, 28(ACC)
    lw A6, 24(ACC)
    lw A5, 20(ACC)
    lw A4, 16(ACC)
    lw A3, 12(ACC)
    lw A2, 8(ACC)
    lw A1, 4(ACC)
    lw A0, 0(ACC)
.Lload_end:
    .option pop
.Lgo:
    lw E, FR_ESTART(sp)
    lw END, FR_END(sp)
    lw F, FR_ENTRY(sp)
    jr F

.Lfirst:
    VISIT(0)
.Lsecond:
    VISIT(36)
    addi E, E, 72
    bltu E, END, .Lfirst

.Lstore:
    lw F, FR_FULL(sp)
    bgeu ACC, F, .Lstore_part
    .option push
    .option norvc
.Lstore_all:
    sw A7, 28(ACC)
    sw A6, 24(ACC)
    sw A5, 20(ACC)
    sw A4, 16(ACC)
    sw A3, 12(ACC)
    sw A2, 8(ACC)
    sw A1, 4(ACC)
    sw A0, 0(ACC)
.Lstore_end:
    .option pop
    addi OFF, OFF, 4
    addi ACC, ACC, 32
    lw F, FR_FULL(sp)
    bltu ACC, F, .Ltile

.Lpartial:                            /* the last tile, n_out % 8 outputs, or none */
    lw W, FR_REM(sp)
    beqz W, .Lret
    lw F, FR_ZERO(sp)
    bnez F, .Lzero
    slli W, W, 2                      /* loads of outputs rem - 1 .. 0 */
    la F, .Lload_end
    sub F, F, W
    jr F

.Lstore_part:
    lw W, FR_REM(sp)
    sw zero, FR_REM(sp)               /* after these stores: return */
    slli W, W, 2
    la F, .Lstore_end
    sub F, F, W
    jr F

.Lzero:
    li A0, 0
    li A1, 0
    li A2, 0
    li A3, 0
    li A4, 0
    li A5, 0
    li A6, 0
    li A7, 0
    j .Lgo

.Lret:
    lw ra, 0(sp)
    lw gp, 4(sp)
    lw tp, 8(sp)
    lw s0, 12(sp)
    lw s1, 16(sp)
    addi sp, sp, FRAME
    ret

    .if (.Lload_end - .Lload) != 32 || (.Lstore_end - .Lstore_all) != 32
    .error "tile4 load / store sequences are not 8 words"
    .endif
    .size bn_tile4_rv32e, . - bn_tile4_rv32e
