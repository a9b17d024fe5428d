/*
 * bn_kernels_rv32e.S - RV32EC version of run4_b4 (bn_kernels_fast.c), the inner
 * kernel of the 4-bit cols-layout FC layers; selected by the firmware build
 * (-DBN_RUN4_ASM=1, KERNEL=fast), bit-exact with the C version it replaces: the
 * simulator checks every accumulator against the host engine.
 *
 *   void bn_run4_b4_rv32e(const uint32_t *const col[4], const unsigned char *tab,
 *                         size_t n_out, uint32_t *acc);
 *
 * For each column word (8 outputs' 4-bit fields) and each output o of it:
 *   acc[o] += t0[f0] + t1[f1] + t2[f2] + t3[f3]
 * with tk the 16-entry int16 table of input k at tab + 32 k and fk the field of
 * output o in column k's word, as a byte offset: (x >> (27 - 4 j)) & 30 for field j
 * (0 = most significant), (x << 1) & 30 for the last one.
 *
 * Why assembly: the C version needs 14 live values (4 column pointers, 4 words,
 * tables, accumulator pointer, end, sum, field, remainder); GCC allocates 12 of
 * RV32E's registers and spills the column pointers every word. Here gp and tp are
 * used too (saved and restored; nothing in the firmware runs concurrently), so a
 * word costs 4 loads, 4 pointer increments and 8 output blocks of 28 cycles.
 *
 * The last word (n_out % 8 outputs) jumps into the unrolled body: the blocks are
 * laid out from output 7 down to output 0 and have equal size (checked below),
 * so entering rem blocks before the end runs outputs rem - 1 .. 0 only.
 */
#if BN_HOT_FLASH
    .section .text.bn_run4_b4_rv32e, "ax"
#else
    .section .ramfunc.bn_run4_b4_rv32e, "ax"  /* SRAM: no flash wait states */
#endif
    .option norelax                   /* fixed code size: the block checks below */
    .globl bn_run4_b4_rv32e
    .type bn_run4_b4_rv32e, @function
    .balign 4

/* registers: s0 acc pointer, s1 field / scratch, a5 sum, a1 tables, a2 end of the
 * full words, a3 remainder, t0 t1 t2 a4 column pointers, a0 ra gp tp words */
#define ACC s0
#define F s1
#define SUM a5
#define TAB a1
#define END a2
#define REM a3
#define C0 t0
#define C1 t1
#define C2 t2
#define C3 a4
#define W0 a0
#define W1 ra
#define W2 gp
#define W3 tp

/* one output: field extraction EXTRACT(reg) into F, four lookups, acc[OFF] += sum */
#define LOOKUP_FIRST(EXTRACT, W) EXTRACT(W); andi F, F, 30; add F, F, TAB; lh SUM, 0(F)
#define LOOKUP(EXTRACT, W, K) EXTRACT(W); andi F, F, 30; add F, F, TAB; lh F, (32 * K)(F); add SUM, SUM, F
#define BLOCK(EXTRACT, OFF) \
    LOOKUP_FIRST(EXTRACT, W0); LOOKUP(EXTRACT, W1, 1); LOOKUP(EXTRACT, W2, 2); \
    LOOKUP(EXTRACT, W3, 3); lw F, OFF(ACC); add F, F, SUM; sw F, OFF(ACC)

#define SR27(w) srli F, w, 27
#define SR23(w) srli F, w, 23
#define SR19(w) srli F, w, 19
#define SR15(w) srli F, w, 15
#define SR11(w) srli F, w, 11
#define SR7(w) srli F, w, 7
#define SR3(w) srli F, w, 3
#define SL1(w) slli F, w, 1

bn_run4_b4_rv32e:
    addi sp, sp, -20
    sw ra, 0(sp)
    sw gp, 4(sp)
    sw tp, 8(sp)
    sw s0, 12(sp)
    sw s1, 16(sp)
    lw C0, 0(a0)
    lw C1, 4(a0)
    lw C2, 8(a0)
    lw C3, 12(a0)
    mv ACC, a3
    andi REM, a2, 7
    andi END, a2, -8
    slli END, END, 2
    add END, END, ACC                 /* acc + 4 * (n_out & ~7) */
    bltu ACC, END, .Lword
    j .Lafter
.Lword:
    lw W0, 0(C0)
    lw W1, 0(C1)
    lw W2, 0(C2)
    lw W3, 0(C3)
    addi C0, C0, 4
    addi C1, C1, 4
    addi C2, C2, 4
    addi C3, C3, 4
.Lbody:
.Lb7: BLOCK(SL1, 28)
.Lb6: BLOCK(SR3, 24)
.Lb5: BLOCK(SR7, 20)
.Lb4: BLOCK(SR11, 16)
.Lb3: BLOCK(SR15, 12)
.Lb2: BLOCK(SR19, 8)
.Lb1: BLOCK(SR23, 4)
.Lb0: BLOCK(SR27, 0)
.Lbody_end:
    addi ACC, ACC, 32
    bltu ACC, END, .Lword
.Lafter:
    bnez REM, .Ltail
    lw ra, 0(sp)
    lw gp, 4(sp)
    lw tp, 8(sp)
    lw s0, 12(sp)
    lw s1, 16(sp)
    addi sp, sp, 20
    ret
.Ltail:                                /* rem < 8 outputs in the last word */
    lw W0, 0(C0)
    lw W1, 0(C1)
    lw W2, 0(C2)
    lw W3, 0(C3)
    slli F, REM, 2                     /* F = rem * BLOCK_BYTES (60 = 64 - 4) */
    slli SUM, REM, 6
    sub F, SUM, F
    li REM, 0                          /* after the body: exit */
    la SUM, .Lbody_end
    sub F, SUM, F
    jr F

/* every block the same size, or the jump into the body lands wrong */
    .if (.Lb6 - .Lb7) != 60 || (.Lb5 - .Lb6) != 60 || (.Lb4 - .Lb5) != 60
    .error "run4 blocks are not 60 bytes"
    .endif
    .if (.Lb3 - .Lb4) != 60 || (.Lb2 - .Lb3) != 60 || (.Lb1 - .Lb2) != 60
    .error "run4 blocks are not 60 bytes"
    .endif
    .if (.Lb0 - .Lb1) != 60 || (.Lbody_end - .Lb0) != 60
    .error "run4 blocks are not 60 bytes"
    .endif
    .size bn_run4_b4_rv32e, . - bn_run4_b4_rv32e
