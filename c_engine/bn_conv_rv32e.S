/*
 * bn_conv_rv32e.S - RV32EC version of conv_scatter8 (bn_conv.c), the inner kernel of
 * the fast conv layers, and of its finish pass and table build; selected by the
 * firmware build (-DBN_CONV_ASM=1, KERNEL=fast ASM=1), bit-exact with the C version
 * it replaces: the simulator checks every trace entry against the host engine.
 *
 *   void bn_conv_scatter8_rv32e(const int8_t *in, const int8_t *end,
 *                               const unsigned char *tb, uint32_t *p0, uint32_t *p1,
 *                               uint32_t *p2, int32_t c);
 *
 * For each input x = in[i] - c (the image centred on its smallest pixel, or a conv
 * map, 0..BN_MAP_MAX, with c = 0: always 0..255) that is not zero, and each tap
 * k = 3 dy + dx:
 *     p_dy[i + 2 - dx] += w[k] * x
 * with w[k] * x from the tables tb (9 taps x 16 int16, t[k][n] = w[k] * n at byte
 * 32 k + 2 n): one lookup when x < 16 (most non-zero entries of a ReLU map; chapter
 * 16 counts them per layer), else two, over the 4-bit digits of x.
 *
 * Cost per tap in SRAM: x < 16 lh c.lw c.add c.sw, 7 cycles; x >= 16 lh lh c.slli
 * c.add c.lw c.add c.sw, 11; a zero input: one load and the pointer steps, ~13 cycles
 * for all 9 taps; an aligned word of 4 inputs equal to c (the image's background, a
 * map's zeros) ~22.
 * Registers: digit pointers t1 t2 (one digit: its pointer in t0), products s0 s1
 * (saved), c in gp and c in all 4 bytes in ra (saved), the accumulator pointers in
 * a3-a5 (c.lw / c.sw: offsets 0, 4, 8). The one-digit block ends in its own copy of
 * the loop step (no jump back); the rarer two-digit block jumps back (12 bytes less).
 * BN_HOT_CONV_RAM (firmware HOT_MEM=conv) puts the scatter and the finish pass in
 * SRAM (no flash wait states).
 */
#if BN_HOT_CONV_RAM
    .section .ramfunc.bn_conv_scatter8_rv32e, "ax"
#else
    .section .text.bn_conv_scatter8_rv32e, "ax"
#endif
    .option norelax
    .globl bn_conv_scatter8_rv32e
    .type bn_conv_scatter8_rv32e, @function
    .balign 4

#define IN a0
#define END a1
#define TB a2
#define P0 a3
#define P1 a4
#define P2 a5
#define X t0
#define D0 t1
#define D1 t2

/* w[k] * x: digits 0 and 1 */
.macro TAP2 k, p, off
    lh   s0, 32*\k(D0)
    lh   s1, 32*\k(D1)
    slli s1, s1, 4
    add  s0, s0, s1
    lw   s1, \off(\p)
    add  s1, s1, s0
    sw   s1, \off(\p)
.endm

/* w[k] * x: one digit (x < 16), X the entry's address */
.macro TAP1 k, p, off
    lh   s0, 32*\k(X)
    lw   s1, \off(\p)
    add  s1, s1, s0
    sw   s1, \off(\p)
.endm

.macro TAPS m
    \m 0, P0, 8
    \m 1, P0, 4
    \m 2, P0, 0
    \m 3, P1, 8
    \m 4, P1, 4
    \m 5, P1, 0
    \m 6, P2, 8
    \m 7, P2, 4
    \m 8, P2, 0
.endm

bn_conv_scatter8_rv32e:
    lw   t0, 0(sp)                    /* c, the 7th argument */
    addi sp, sp, -16
    sw   s0, 0(sp)
    sw   s1, 4(sp)
    sw   ra, 8(sp)
    sw   gp, 12(sp)
    mv   gp, t0
    andi ra, t0, 255                  /* c in all 4 bytes */
    slli s0, ra, 8
    or   ra, ra, s0
    slli s0, ra, 16
    or   ra, ra, s0
    bgeu IN, END, .Ldone
.Lword8:                              /* an aligned word of 4 inputs equal to c: */
    andi s0, IN, 3                    /* skipped at once (a digit's borders) */
    bnez s0, .Lpix8
    addi s0, IN, 4
    bltu END, s0, .Lpix8
    lw   s0, 0(IN)
    bne  s0, ra, .Lpix8
    addi IN, IN, 4
    addi P0, P0, 16
    addi P1, P1, 16
    addi P2, P2, 16
    bltu IN, END, .Lword8
    j    .Ldone
.Lpix8:
    lb   X, 0(IN)
    sub  X, X, gp
    bnez X, .Lnz
.Lnext8:
    addi IN, IN, 1
    addi P0, P0, 4
    addi P1, P1, 4
    addi P2, P2, 4
    bltu IN, END, .Lword8
.Ldone:
    lw   s0, 0(sp)
    lw   s1, 4(sp)
    lw   ra, 8(sp)
    lw   gp, 12(sp)
    addi sp, sp, 16
    ret
    .size bn_conv_scatter8_rv32e, . - bn_conv_scatter8_rv32e

/* the tap blocks (own symbols: the profile counts them). Two digits (x >= 16): */
    .type bn_conv_tap2, @function
bn_conv_tap2:
.Lnz:
    srli D1, X, 4                     /* the high digit */
    slli X, X, 1                      /* 2x: a digit masked with 30 is a byte offset */
    beqz D1, .Ltap1                   /* x < 16: one digit (most map entries) */
    andi D0, X, 30
    add  D0, D0, TB
    slli D1, D1, 1
    add  D1, D1, TB
    TAPS TAP2
    j    .Lnext8                      /* the rarer block jumps back (flash: 12 bytes) */
    .size bn_conv_tap2, . - bn_conv_tap2

/* One digit (0 < x < 16: t[k][x] is the product itself): per tap lh c.lw c.add c.sw,
 * 7 cycles, against 11 for two digits. */
    .type bn_conv_tap1, @function
bn_conv_tap1:
.Ltap1:
    add  X, X, TB
    TAPS TAP1
    addi IN, IN, 1                    /* .Lnext8 here: no jump back */
    addi P0, P0, 4
    addi P1, P1, 4
    addi P2, P2, 4
    bltu IN, END, .Lword8
    j    .Ldone
    .size bn_conv_tap1, . - bn_conv_tap1

/*
 *   void bn_conv_finish_rv32e(uint32_t *p, uint32_t *end, int16_t *q,
 *                             const bn_conv_fin *f);
 *
 * conv_finish (bn_conv.c): the accumulators p .. end (an output row) -> q (int8),
 * each reset to f->init; v = s <= 0 ? 0 : min((s + half) >> shift, 127), ReLU by a
 * mask (no branch); pool: pairs max-ed, stored (second = 0) or max-ed with q.
 * f: half, shift, init, pool, second (uint32_t each).
 */
#if BN_HOT_CONV_RAM
    .section .ramfunc.bn_conv_finish_rv32e, "ax"  /* SRAM: no flash wait states */
#else
    .section .text.bn_conv_finish_rv32e, "ax"
#endif
    .globl bn_conv_finish_rv32e
    .type bn_conv_finish_rv32e, @function
    .balign 4
#define FP a0
#define FEND a1
#define FQ a2
#define HALF a3
#define SHIFT a4
#define INIT a5
#define MAX t0
#define V s0
#define V1 s1

/* r = finished accumulator at off(FP), reset to INIT; uses t1 t2 */
.macro FIN r, off
    lw   \r, \off(FP)
    sw   INIT, \off(FP)
    slt  t2, zero, \r
    add  \r, \r, HALF
    srl  \r, \r, SHIFT
    neg  t2, t2
    and  \r, \r, t2
    bltu MAX, \r, .Lsat\@           /* rare: out of line, not taken in the loop */
.Lret\@:
    .subsection 1                     /* after the function, same section */
.Lsat\@:
    mv   \r, MAX
    j    .Lret\@
    .subsection 0
.endm

bn_conv_finish_rv32e:
    addi sp, sp, -8
    sw   s0, 0(sp)
    sw   s1, 4(sp)
    lw   SHIFT, 4(a3)
    lw   INIT, 8(a3)
    lw   t1, 12(a3)                   /* pool */
    lw   s1, 16(a3)                   /* second */
    lw   HALF, 0(a3)                  /* last: HALF is a3, the pointer */
    li   MAX, 127                     /* BN_MAP_MAX */
    bgeu FP, FEND, .Lfdone
    bnez t1, .Lpool
.Lfrow:
    FIN  V, 0
    sb   V, 0(FQ)
    addi FQ, FQ, 1
    addi FP, FP, 4
    bltu FP, FEND, .Lfrow
.Lfdone:
    lw   s0, 0(sp)
    lw   s1, 4(sp)
    addi sp, sp, 8
    ret

.Lpool:
    mv   t1, s1
    mv   s1, zero
.Lfpair:
    FIN  V, 0
    FIN  V1, 4
    bgeu V, V1, 2f
    mv   V, V1
2:  beqz t1, 3f
    lbu  V1, 0(FQ)
    bgeu V, V1, 3f
    mv   V, V1
3:  sb   V, 0(FQ)
    addi FQ, FQ, 1
    addi FP, FP, 8
    bltu FP, FEND, .Lfpair
    j    .Lfdone
    .size bn_conv_finish_rv32e, . - bn_conv_finish_rv32e

/*
 *   void bn_conv_tables_rv32e(const int16_t *w, int16_t *tab);
 *
 * The product tables of conv_map (bn_conv.c): tab[16 k + n] = w[k] * n, k < 9,
 * n < 16, a word (two entries) a store: the words are an arithmetic progression
 * (step 2w in both halves) once word 1 carries the low half's borrow (w < 0). In
 * flash: with the 64-channel CNN, SRAM has no room for it beside the tap blocks.
 */
    .section .text.bn_conv_tables_rv32e, "ax"  /* flash: SRAM has no room for it */
    .globl bn_conv_tables_rv32e
    .type bn_conv_tables_rv32e, @function
    .balign 4
bn_conv_tables_rv32e:
    addi a2, a0, 18                   /* end of the 9 weights */
1:  lh   a5, 0(a0)                    /* w */
    slli a3, a5, 16                   /* word 0: entries 0 and w */
    sw   a3, 0(a1)
    slli a5, a5, 1
    slli a4, a5, 16
    add  a4, a4, a5                   /* D: 2w in both halves */
    add  a3, a3, a4
    srli a5, a5, 31                   /* w < 0: the low half's borrow, the same */
    slli a5, a5, 16                   /* for words 1..7 */
    add  a3, a3, a5                   /* word 1: entries 2w, 3w */
    addi a5, a1, 32                   /* end of the tap's 8 words */
    addi a1, a1, 4
2:  sw   a3, 0(a1)                    /* word j + 1 = word j + D */
    add  a3, a3, a4
    addi a1, a1, 4
    bltu a1, a5, 2b
    addi a0, a0, 2
    bltu a0, a2, 1b
    ret
    .size bn_conv_tables_rv32e, . - bn_conv_tables_rv32e

/*   void bn_conv_fill_rv32e(uint32_t *p, uint32_t *end, uint32_t v);
 * p .. end = v, two words a step (end - p even, > 0): a row of conv_map's ring. */
    .globl bn_conv_fill_rv32e
    .type bn_conv_fill_rv32e, @function
bn_conv_fill_rv32e:
1:  sw   a2, 0(a0)
    sw   a2, 4(a0)
    addi a0, a0, 8
    bltu a0, a1, 1b
    ret
    .size bn_conv_fill_rv32e, . - bn_conv_fill_rv32e
