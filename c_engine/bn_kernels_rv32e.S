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
    slli F, a1, 5                     /* end = e + 36 k */
    slli t0, a1, 2
    add F, F, t0
    add a1, F, a0
    .globl bn_tile4e_rv32e            /* (e, end, n_out, acc, zero): end = e + 36 k */
bn_tile4e_rv32e:
    addi sp, sp, -FRAME
    sw ra, 0(sp)
    sw gp, 4(sp)
    sw tp, 8(sp)
    sw s0, 12(sp)
    sw s1, 16(sp)
    sw a4, FR_ZERO(sp)
    sw a1, FR_END(sp)
    la F, .Lstore                     /* k = 0: no inputs (zero: stores zeros) */
    beq a1, a0, 2f
    la F, .Lfirst                     /* k even: from the first half, e */
    sub t0, a1, a0                    /* 36 k: bit 2 is k's parity (9 k odd iff k odd) */
    andi t0, t0, 4
    beqz t0, 2f
    addi a0, a0, -36                  /* k odd: from the second half, e - 36 */
    la F, .Lsecond
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

/*
 * bn_pass4sym_rv32e: the pass over the inputs of a 4bitsym cols layer (pass_4bitsym
 * of bn_kernels_fast.c, whose C version the host runs) with the tile kernel inside
 * (one frame, no call per chunk), bit-exact with it:
 *
 *   void bn_pass4sym_rv32e(const uint32_t *w, size_t wpc, const int8_t *act,
 *                          size_t n_in, size_t n_out, int32_t c, uint32_t *acc,
 *                          uint32_t zero);
 *
 * Scan: skips inputs equal to c four at a time (one word compared with c in all four
 * bytes: 8 cycles per four skipped inputs), builds the product table of each other
 * input in its entry (bn_tab4) with eight word stores: word k holds t[2k] (low half)
 * and t[2k + 1] = t[2k] + 2d (high half), t[f] = (2f - 15) d; as integers
 * w_k = t[2k] + 65536 t[2k + 1] + 65536 [t[2k] < 0], an arithmetic progression of
 * step 4d * 65537 plus the low half's borrow (words 0-3 when d > 0, 4-7 when d < 0).
 * Every BN_TILE_K entries, and the last ones, the tile loop of bn_tile4_rv32e runs
 * on them (same registers, its state in this frame); then the scan goes on.
 */
#ifndef BN_TILE_K_SYM                 /* 4bitsym-only firmware: acc_init in flash, */
#if BN_FC_WTYPES == 0x10              /* its SRAM to the chunk (bn_kernels_fast.c) */
#define BN_TILE_K_SYM 14
#else
#define BN_TILE_K_SYM 8
#endif
#endif
#define M_RA 0                        /* the caller's registers */
#define M_S0 4
#define M_S1 8
#define M_GP 12
#define M_TP 16
#define M_ACC 20                      /* the layer */
#define M_ZERO 24
#define M_WPC4 28
#define M_CW 32
#define M_INEND 36
#define M_C 40
#define M_FULL 44                     /* acc + 4 * (n_out & ~7) */
#define M_REM 48                      /* n_out % 8 */
#define M_P 52                        /* the scan, while a chunk runs */
#define M_COL 56
#define M_END 60                      /* the chunk: end of its entries, minus 1 when
                                         their number is odd or 0 */
#define M_ENT 64                      /* BN_TILE_K_SYM entries of 36 bytes */
#define M_ELIM (M_ENT + 36 * BN_TILE_K_SYM)
#define PFRAME M_ELIM

/* scan registers: s0 input pointer, s1 its column, gp end of the inputs, tp c; t0 4
 * columns' stride, t1 end - 3 (a word fits), t2 end of the entries, a3 next entry,
 * ra one column's stride, a5 c in all four bytes; a0 a1 a2 a4 scratch (the build's
 * values in x8-x15: compressed stores). Tile registers: as bn_tile4_rv32e. */
    .section .text.bn_pass4sym_rv32e, "ax"  /* the set-up, once per layer: flash */
    .globl bn_pass4sym_rv32e
    .type bn_pass4sym_rv32e, @function
    .balign 4
bn_pass4sym_rv32e:
    lw t0, 0(sp)                      /* acc, zero: the 7th and 8th arguments */
    lw t1, 4(sp)
    addi sp, sp, -PFRAME
    sw ra, M_RA(sp)
    sw s0, M_S0(sp)
    sw s1, M_S1(sp)
    sw gp, M_GP(sp)
    sw tp, M_TP(sp)
    sw t0, M_ACC(sp)
    sw t1, M_ZERO(sp)
    andi t1, a4, 7
    sw t1, M_REM(sp)
    andi t1, a4, -8                   /* full tiles end at acc + 4 (n_out & ~7) */
    slli t1, t1, 2
    add t0, t0, t1
    lw t1, M_ZERO(sp)                 /* zero: FULL - 2 (compares as FULL: acc and */
    slli t1, t1, 1                    /* FULL are multiples of 4), bit 1 the flag */
    sub t0, t0, t1
    sw t0, M_FULL(sp)
    mv s1, a0
    mv s0, a2
    add gp, a2, a3
    sw gp, M_INEND(sp)
    mv tp, a5
    sw tp, M_C(sp)
    slli ra, a1, 2
    sw ra, M_WPC4(sp)
    andi a5, a5, 255                  /* c in all four bytes */
    slli a4, a5, 8
    or a5, a5, a4
    slli a4, a5, 16
    or a5, a5, a4
    sw a5, M_CW(sp)
    slli t0, ra, 2
    addi t1, gp, -3
    addi t2, sp, M_ELIM
    addi a3, sp, M_ENT
    la a4, .Pscan
    jr a4
#if BN_HOT_FLASH
    .section .text.bn_pass4sym_scan, "ax"
#else
    .section .ramfunc.bn_pass4sym_scan, "ax"
#endif
    .type bn_pass4sym_scan, @function
    .balign 4
bn_pass4sym_scan:                     /* the scan and the tile loop: SRAM */
.Pscan:
    andi a4, s0, 3                    /* words from an aligned input on */
    bnez a4, .Pbyte
    bgeu s0, t1, .Pbyte
.Pwords:
    lw a4, 0(s0)
    bne a4, a5, .Pbyte
    addi s0, s0, 4
    add s1, s1, t0
    bltu s0, t1, .Pwords
    bgeu s0, gp, .Pdone
.Pbyte:
    lb a4, 0(s0)
    beq a4, tp, .Pnext
    sub a4, a4, tp                    /* d != 0 */
    sw s1, 0(a3)
    slli a1, a4, 16
    add a0, a1, a4                    /* d * 65537 */
    slli a2, a0, 2                    /* the step */
    slli a1, a1, 1
    add a0, a0, a1                    /* w_4 without the borrow */
    bltz a4, .Pneg
    lui a1, 16                        /* d > 0: w_3 = w_4 - step + 65536 */
    add a1, a1, a0
    sub a1, a1, a2
.Pstore:
    sw a0, 20(a3)
    add a0, a0, a2
    sw a0, 24(a3)
    add a0, a0, a2
    sw a0, 28(a3)
    add a0, a0, a2
    sw a0, 32(a3)
    sw a1, 16(a3)
    sub a1, a1, a2
    sw a1, 12(a3)
    sub a1, a1, a2
    sw a1, 8(a3)
    sub a1, a1, a2
    sw a1, 4(a3)
    addi a3, a3, 36
    bgeu a3, t2, .Mchunk
.Pnext:
    addi s0, s0, 1
    add s1, s1, ra
    bgeu s0, gp, .Pdone
    andi a4, s0, 3
    bnez a4, .Pbyte
    bltu s0, t1, .Pwords
    j .Pbyte
.Pneg:                                /* d < 0: w_4 + 65536, w_3 = w_4 - step */
    sub a1, a0, a2
    lui a4, 16
    add a0, a0, a4
    j .Pstore
.Pdone:                               /* the last entries; or none at all: acc = 0 */
    addi a0, sp, M_ENT
    bne a3, a0, .Mchunk
    lw a4, M_FULL(sp)                 /* bit 1: zero, acc not set up yet */
    andi a4, a4, 2
    bnez a4, .Mchunk
.Pret:
    lw ra, M_RA(sp)
    lw s0, M_S0(sp)
    lw s1, M_S1(sp)
    lw gp, M_GP(sp)
    lw tp, M_TP(sp)
    addi sp, sp, PFRAME
    ret

.Mchunk:                              /* entries sp + M_ENT .. a3: the tile loop */
    sw s0, M_P(sp)
    sw s1, M_COL(sp)
    addi F, sp, M_ENT                 /* 36 k: bit 2 is k's parity */
    sub F, a3, F
    seqz E, F
    andi F, F, 4
    or F, F, E
    snez F, F                         /* k odd or 0: end - 1 (compares as end, */
    sub a3, a3, F                     /* bit 0 the flag) */
    sw a3, M_END(sp)
    lw ACC, M_ACC(sp)
    li OFF, 0
    lw F, M_FULL(sp)                  /* F: FULL, minus 2 while zero (see .Mresume) */
    bgeu ACC, F, .Mpartial            /* n_out < 8: only the last tile */
.Mtile:
    andi W, F, 2
    bnez W, .Mzero
    .option push
    .option norvc                     /* 4 bytes each: .Mpartial jumps into them */
.Mload:
    lw A7, 28(ACC)
    lw A6, 24(ACC)
    lw A5, 20(ACC)
    lw A4, 16(ACC)
    lw A3, 12(ACC)
    lw A2, 8(ACC)
    lw A1, 4(ACC)
    lw A0, 0(ACC)
.Mload_end:
    .option pop
.Mgo:
    addi E, sp, M_ENT
    lw END, M_END(sp)
    andi F, END, 1
    bnez F, .Modd
.Mfirst:
    VISIT(0)
.Msecond:
    VISIT(36)
    addi E, E, 72
    bltu E, END, .Mfirst
.Mstore:
    lw F, M_FULL(sp)
    bgeu ACC, F, .Mstore_part
    .option push
    .option norvc
.Mstore_all:
    sw A7, 28(ACC)
    sw A6, 24(ACC)
    sw A5, 20(ACC)
    sw A4, 16(ACC)
    sw A3, 12(ACC)
    sw A2, 8(ACC)
    sw A1, 4(ACC)
    sw A0, 0(ACC)
.Mstore_end:
    .option pop
    addi OFF, OFF, 4                  /* F: FULL still (the stores keep it) */
    addi ACC, ACC, 32
    bltu ACC, F, .Mtile
.Mpartial:                            /* the last tile, n_out % 8 outputs, or none */
    lw W, M_REM(sp)
    beqz W, .Mresume
    addi E, ACC, -16                  /* past FULL: the last tile is stored */
    bgeu E, F, .Mresume
    andi E, F, 2
    bnez E, .Mzero
    slli W, W, 2                      /* loads of outputs rem - 1 .. 0 */
    la F, .Mload_end
    sub F, F, W
    jr F
.Mstore_part:
    lw W, M_REM(sp)
    slli W, W, 2
    la E, .Mstore_end                 /* F: FULL kept for the checks after */
    sub E, E, W
    jr E
.Modd:                                /* k odd: from the second half of e - 36 */
    addi F, E, -1
    beq F, END, .Mstore               /* k = 0: no inputs (zero: stores zeros) */
    addi E, E, -36
    j .Msecond
.Mzero:
    li A0, 0
    li A1, 0
    li A2, 0
    li A3, 0
    li A4, 0
    li A5, 0
    li A6, 0
    li A7, 0
    j .Mgo
.Mresume:                             /* back to the scan, or return */
    lw a4, M_FULL(sp)                 /* acc is set up now: not zero any more */
    addi a4, a4, 2
    andi a4, a4, -4
    sw a4, M_FULL(sp)
    lw s0, M_P(sp)
    lw gp, M_INEND(sp)
    bgeu s0, gp, .Pret                /* the chunk of .Pdone: the layer is done */
    lw s1, M_COL(sp)
    lw tp, M_C(sp)
    lw ra, M_WPC4(sp)
    lw a5, M_CW(sp)
    slli t0, ra, 2
    addi t1, gp, -3
    addi t2, sp, M_ELIM
    addi a3, sp, M_ENT
    j .Pnext
    .if (.Mload_end - .Mload) != 32 || (.Mstore_end - .Mstore_all) != 32
    .error "pass4sym load / store sequences are not 8 words"
    .endif
    .size bn_pass4sym_scan, . - bn_pass4sym_scan

#if BN_SHIFTNORM_ASM
/*
 * bn_shiftnorm_relu (bitnet.h) in RV32EC, for the fast firmware
 * (-DBN_SHIFTNORM_ASM=1; bn_kernels.c then leaves out its C version, the oracle the
 * host runs): the same result, status and argmax (the first largest). The max pass
 * takes two values per step; the output pass has one branch for ReLU zeros.
 */
#if BN_HOT_FLASH
    .section .text.bn_shiftnorm_relu, "ax"
#else
    .section .ramfunc.bn_shiftnorm_relu, "ax"
#endif
    .globl bn_shiftnorm_relu
    .type bn_shiftnorm_relu, @function
    .balign 4
bn_shiftnorm_relu:                    /* (acc, n, out, shift, argmax) */
    mv a5, a0
    li a0, -1                         /* BN_ERR_NULL */
    beqz a5, .Sret
    beqz a2, .Sret
    li a0, -4                         /* BN_ERR_SHAPE */
    beqz a1, .Sret
    slli a1, a1, 2
    add a1, a1, a5                    /* end */
    lw t2, 0(a5)                      /* max */
    mv a0, a5                         /* best */
    mv t0, a5
    sub t1, a1, a5                    /* 4 n */
    andi t1, t1, 4
    add t0, t0, t1                    /* n odd: acc[0] is the start, pairs after it */
    bgeu t0, a1, 3f
1:  lw t1, 0(t0)
    blt t2, t1, 4f
2:  lw t1, 4(t0)
    blt t2, t1, 5f
6:  addi t0, t0, 8
    bltu t0, a1, 1b
    j 3f
4:  mv t2, t1                         /* a new max at t0 */
    mv a0, t0
    j 2b
5:  mv t2, t1                         /* at t0 + 4 */
    addi a0, t0, 4
    j 6b
3:  li t1, 0                          /* s: the bit length of max >> 7 (max > 127) */
    li t0, 127
    bge t0, t2, 8f
    srli t2, t2, 7
7:  addi t1, t1, 1
    srli t2, t2, 1
    bnez t2, 7b
8:  li t2, 0                          /* half = s ? 1 << (s - 1) : 0 */
    beqz t1, 9f
    addi t2, t1, -1
    li t0, 1
    sll t2, t0, t2
9:  beqz a3, 10f
    sb t1, 0(a3)
10: beqz a4, 11f
    sub t0, a0, a5
    srli t0, t0, 2
    sh t0, 0(a4)
11: mv a3, a2                         /* out */
    li a4, 128
12: lw a0, 0(a5)
    addi a5, a5, 4
    blez a0, 14f                      /* ReLU */
    add a0, a0, t2                    /* uint32: + half, >> s */
    srl a0, a0, t1
    bgeu a0, a4, 15f
13: sb a0, 0(a3)
    addi a3, a3, 1
    bltu a5, a1, 12b
    li a0, 0
    ret
14: sb zero, 0(a3)
    addi a3, a3, 1
    bltu a5, a1, 12b
    li a0, 0
    ret
15: li a0, 127
    j 13b
.Sret:
    ret
    .size bn_shiftnorm_relu, . - bn_shiftnorm_relu
#endif

#if BN_TERN_ASM
/*
 * bn_run4_tern_rv32e: run4_tern of bn_kernels_fast.c (Ternary, four inputs per pass,
 * two pair tables t and t + 32 bytes) in RV32EC, bit-exact with it, for the fast
 * firmware (-DBN_TERN_ASM=1):
 *
 *   uint32_t bn_run4_tern_rv32e(const uint32_t *const *col, const unsigned char *t,
 *                               size_t n_out, uint32_t *p);
 *
 * Per column byte (5 outputs, most significant byte first, so at addresses +3..+0 of
 * a little-endian word): its four inputs' bytes spread by bn_tern_lut into
 * y01 = lut[b0] << 2 | lut[b1] and y23, then per output two lookups and one
 * read-modify-write of the accumulator. Returns the TERN_BAD bits seen (bytes > 242).
 * Registers: byte pointers a4 a5 t0 t1; y01 s0, y23 s1; p a3, end a2, t a1, lut t2;
 * scratch a0 ra; bytes left in the word gp; TERN_BAD bits tp.
 */
#if BN_HOT_FLASH
    .section .text.bn_run4_tern_rv32e, "ax"
#else
    .section .ramfunc.bn_run4_tern_rv32e, "ax"
#endif
    .globl bn_run4_tern_rv32e
    .type bn_run4_tern_rv32e, @function
    .balign 4
#define COMMA ,
/* lut entry of the byte at B into R */
#define TLUT(R, B) lbu R, 0(B); slli R, R, 2; add R, R, t2; lw R, 0(R)
/* output at byte offset OFF of p: field EXT of y01 and y23 */
#define TOUT(E01, E23, OFF) \
    E01; andi a0, a0, 30; add a0, a0, a1; lh a0, 0(a0); \
    E23; andi ra, ra, 30; add ra, ra, a1; lh ra, 32(ra); \
    add a0, a0, ra; lw ra, OFF(a3); add ra, ra, a0; sw ra, OFF(a3)
bn_run4_tern_rv32e:
    addi sp, sp, -20
    sw s0, 0(sp)
    sw s1, 4(sp)
    sw ra, 8(sp)
    sw gp, 12(sp)
    sw tp, 16(sp)
    lw a4, 0(a0)
    lw a5, 4(a0)
    lw t0, 8(a0)
    lw t1, 12(a0)
    addi a4, a4, 3
    addi a5, a5, 3
    addi t0, t0, 3
    addi t1, t1, 3
    slli a2, a2, 2
    add a2, a2, a3
    la t2, bn_tern_lut
    li tp, 0
.Tword:
    li gp, 4
.Tbyte:
    TLUT(s0, a4)
    TLUT(a0, a5)
    slli s0, s0, 2
    or s0, s0, a0
    TLUT(s1, t0)
    TLUT(a0, t1)
    slli s1, s1, 2
    or s1, s1, a0
    or tp, tp, s0
    or tp, tp, s1
    addi a0, a3, 20                   /* at most 5 outputs left: the last group */
    bgeu a0, a2, .Tlast
    TOUT(srli a0 COMMA s0 COMMA 15, srli ra COMMA s1 COMMA 15, 0)
    TOUT(srli a0 COMMA s0 COMMA 11, srli ra COMMA s1 COMMA 11, 4)
    TOUT(srli a0 COMMA s0 COMMA 7, srli ra COMMA s1 COMMA 7, 8)
    TOUT(srli a0 COMMA s0 COMMA 3, srli ra COMMA s1 COMMA 3, 12)
    TOUT(slli a0 COMMA s0 COMMA 1, slli ra COMMA s1 COMMA 1, 16)
    addi a3, a3, 20
    addi a4, a4, -1
    addi a5, a5, -1
    addi t0, t0, -1
    addi t1, t1, -1
    addi gp, gp, -1
    bnez gp, .Tbyte
    addi a4, a4, 8                    /* byte +3 of the next word */
    addi a5, a5, 8
    addi t0, t0, 8
    addi t1, t1, 8
    j .Tword
.Tlast:                               /* outputs k < end - p: fields 16 - 4k of y << 1 */
    slli s0, s0, 1
    slli s1, s1, 1
    li gp, 16
1:  bgeu a3, a2, 2f
    TOUT(srl a0 COMMA s0 COMMA gp, srl ra COMMA s1 COMMA gp, 0)
    addi a3, a3, 4
    addi gp, gp, -4
    j 1b
2:  lui a0, 0x5000                    /* TERN_BAD | TERN_BAD << 2 */
    and a0, a0, tp
    lw s0, 0(sp)
    lw s1, 4(sp)
    lw ra, 8(sp)
    lw gp, 12(sp)
    lw tp, 16(sp)
    addi sp, sp, 20
    ret
    .size bn_run4_tern_rv32e, . - bn_run4_tern_rv32e
#endif

/*
 * bn_accinit3_rv32e: acc_init of bn_kernels_fast.c (acc[o] = c * wsum[o]) in one pass
 * when |c| = 2^b1 + 2^b2 + 2^b3 has 1 to 3 set bits (the MNIST background mostly has
 * 2 or 3; bn_fc_cols finds them): per output Horner's
 * ((w << (b3 - b2)) + w) << (b2 - b1)) + w) << b1, the absent steps skipped (d < 0),
 * then the sign (neg = -1 when c < 0: 0 - sum, as acc_init); wsum NULL: zeros.
 *
 *   void bn_accinit3_rv32e(const int32_t *wsum, size_t n_out, uint32_t *acc,
 *                          uint32_t b1, int32_t d2, int32_t d3, uint32_t neg);
 */
#if BN_HOT_FLASH
    .section .text.bn_accinit3_rv32e, "ax"
#else
    .section .ramfunc.bn_accinit3_rv32e, "ax"
#endif
    .globl bn_accinit3_rv32e
    .type bn_accinit3_rv32e, @function
    .balign 4
bn_accinit3_rv32e:
    lw t0, 0(sp)                      /* neg */
    slli a1, a1, 2
    add a1, a1, a2                    /* end of acc */
    beqz a0, 4f
1:  lw t2, 0(a0)
    mv t1, t2
    bltz a5, 2f
    sll t1, t1, a5
    add t1, t1, t2
2:  bltz a4, 3f
    sll t1, t1, a4
    add t1, t1, t2
3:  sll t1, t1, a3
    xor t1, t1, t0
    sub t1, t1, t0
    sw t1, 0(a2)
    addi a0, a0, 4
    addi a2, a2, 4
    bltu a2, a1, 1b
    ret
4:  sw zero, 0(a2)                    /* wsum NULL: zeros */
    addi a2, a2, 4
    bltu a2, a1, 4b
    ret
    .size bn_accinit3_rv32e, . - bn_accinit3_rv32e
