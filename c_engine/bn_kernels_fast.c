/*
 * bn_kernels_fast.c - the fast FC kernels for the cols layout (bitnet.h, "FC WEIGHT
 * LAYOUTS"): bit-exact with the row kernels of bn_kernels.c, no multiplication.
 *
 * Per non-zero input d (after centring) a product table t[f] = weight(f) * d of
 * 2^bits int16 entries is built by additions; four inputs are gathered, then one
 * pass over the accumulators adds t0[f0] + t1[f1] + t2[f2] + t3[f3] per output
 * (column-major words: one word of a column holds per_word outputs' fields, so the
 * field offsets are shift + mask, the lookups are loads with constant offsets).
 * The last 1-3 inputs of a layer run with all-zero tables. On the CH32V003 the
 * 4-bit pass (bn_kernels_rv32e.S) costs 6 cycles per non-zero input-weight pair
 * plus 5 per output per four inputs (measured: 8.1 per pair with the padding and
 * calls, 11 per pair for the whole 256-64-64-64-10 network).
 * |t| <= 128 * 255 fits int16; sums are kept in uint32_t (modular, exact).
 */
#include "bitnet.h"

#if (BN_LAYOUTS & 2u)

static int32_t u2i_f(uint32_t u)   /* exact int32 value of a two's-complement word */
{
    return u <= 0x7FFFFFFFu ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* product tables: t[f] = weight(f) * d, built by additions and shifts (inlined
 * into the pass of their type) */

#if BN_HAS_WTYPE(4)
static void tab_4bitsym(int16_t *t, uint32_t d)     /* 2f - 15 */
{
    uint32_t d2 = d << 1, v = d;                /* t[8 + k] = (2k + 1) d = -t[7 - k] */
    t[8] = (int16_t)u2i_f(v); t[7] = (int16_t)u2i_f(0u - v); v += d2;
    t[9] = (int16_t)u2i_f(v); t[6] = (int16_t)u2i_f(0u - v); v += d2;
    t[10] = (int16_t)u2i_f(v); t[5] = (int16_t)u2i_f(0u - v); v += d2;
    t[11] = (int16_t)u2i_f(v); t[4] = (int16_t)u2i_f(0u - v); v += d2;
    t[12] = (int16_t)u2i_f(v); t[3] = (int16_t)u2i_f(0u - v); v += d2;
    t[13] = (int16_t)u2i_f(v); t[2] = (int16_t)u2i_f(0u - v); v += d2;
    t[14] = (int16_t)u2i_f(v); t[1] = (int16_t)u2i_f(0u - v); v += d2;
    t[15] = (int16_t)u2i_f(v); t[0] = (int16_t)u2i_f(0u - v);
}
#endif

#if BN_HAS_WTYPE(5)
static void tab_4bit(int16_t *t, uint32_t d)        /* f - 8, unrolled */
{
    uint32_t v = 0u - (d << 3);
#define T4B(f) t[f] = (int16_t)u2i_f(v); v += d
    T4B(0); T4B(1); T4B(2); T4B(3); T4B(4); T4B(5); T4B(6); T4B(7);
    T4B(8); T4B(9); T4B(10); T4B(11); T4B(12); T4B(13); T4B(14);
#undef T4B
    t[15] = (int16_t)u2i_f(v);
}
#endif

#if BN_HAS_WTYPE(7)
static void tab_fp130(int16_t *t, uint32_t d)       /* sign << 3 | e, unrolled */
{
    uint32_t v = d;
#define TFP(e) t[e] = (int16_t)u2i_f(v); t[(e) + 8] = (int16_t)u2i_f(0u - v); v <<= 1
    TFP(0); TFP(1); TFP(2); TFP(3); TFP(4); TFP(5); TFP(6);
#undef TFP
    t[7] = (int16_t)u2i_f(v);
    t[15] = (int16_t)u2i_f(0u - v);
}
#endif

#if BN_HAS_WTYPE(3)
static void tab_2bitsym(int16_t *t, uint32_t d)     /* 2f - 3 */
{
    uint32_t d3 = (d << 1) + d;
    t[0] = (int16_t)u2i_f(0u - d3);
    t[1] = (int16_t)u2i_f(0u - d);
    t[2] = (int16_t)u2i_f(d);
    t[3] = (int16_t)u2i_f(d3);
}
#endif

#if BN_HAS_WTYPE(1)
static void tab_binary(int16_t *t, uint32_t d)      /* 2f - 1 */
{
    t[0] = (int16_t)u2i_f(0u - d);
    t[1] = (int16_t)u2i_f(d);
}
#endif

/* Accumulate kernels: G = 4 non-zero inputs per pass (their tables contiguous, TB
 * bytes each, at t), one pass over the out accumulators. A column word holds PER
 * outputs' fields, field k (0 = most significant) of width B; as a byte offset into
 * an int16 table it is (x >> (31 - B (k + 1))) & M, M = (2^B - 1) << 1. */
#define LK(t, K, TB, off) ((uint32_t)(int32_t)(*(const int16_t *)((t) + (K) * (TB) + (off))))
#define SUM4(t, TB, o0, o1, o2, o3)                                                      \
    (LK(t, 0, TB, o0) + LK(t, 1, TB, o1) + LK(t, 2, TB, o2) + LK(t, 3, TB, o3))

#ifndef BN_RUN4_ASM
#define BN_RUN4_ASM 0     /* 1: run4_b4 from bn_kernels_rv32e.S (RV32E firmware) */
#endif

#if BN_RUN4_ASM
void bn_run4_b4_rv32e(const uint32_t *const *col, const unsigned char *t, size_t n_out,
                      uint32_t *a);
#define RUN4_B4 bn_run4_b4_rv32e
#elif BN_HAS_WTYPE(4) || BN_HAS_WTYPE(5) || BN_HAS_WTYPE(7)
#define RUN4_B4 run4_b4
/* 4-bit fields: the 8 fields of a word unrolled with constant shifts, so a
 * non-zero input-weight pair costs srli, andi, add, lh, add (6 cycles) and an
 * output's accumulator is loaded and stored once per 4 inputs. */
#define F4(x, s) (((x) >> (s)) & 0x1Eu)
#define OUT4(i, s) p[i] += SUM4(t, 32, F4(x0, s), F4(x1, s), F4(x2, s), F4(x3, s))
static BN_HOT void run4_b4(const uint32_t *const *col, const unsigned char *t, size_t n_out,
                           uint32_t *a)
{
    const uint32_t *c0 = col[0], *c1 = col[1], *c2 = col[2], *c3 = col[3];
    uint32_t *end = a + n_out, tmp[8];
    size_t k, rem = n_out & 7u;
    for (;;) {
        uint32_t *p = a, x0, x1, x2, x3;
        if ((size_t)(end - a) < 8) {
            if (a == end)
                break;
            /* last word, rem < 8 outputs: the same code on a copy (less SRAM code
             * than a second loop); its padding fields land in unused tmp entries */
            for (k = 0; k < 8; k++)
                tmp[k] = k < rem ? a[k] : 0u;
            p = tmp;
        }
        x0 = *c0++; x1 = *c1++; x2 = *c2++; x3 = *c3++;
        OUT4(0, 27); OUT4(1, 23); OUT4(2, 19); OUT4(3, 15);
        OUT4(4, 11); OUT4(5, 7); OUT4(6, 3);
        p[7] += SUM4(t, 32, (x0 << 1) & 0x1Eu, (x1 << 1) & 0x1Eu, (x2 << 1) & 0x1Eu,
                     (x3 << 1) & 0x1Eu);
        if (p == tmp) {
            for (k = 0; k < rem; k++)
                a[k] = tmp[k];
            break;
        }
        a += 8;
    }
}
#endif

/* Narrower fields (2bitsym, Binary): four fields per step, the words shifted on. */
#define DEFINE_RUN4(B)                                                                  \
static BN_HOT void run4_b##B(const uint32_t *const *col, const unsigned char *t,          \
                             size_t n_out, uint32_t *a)                                  \
{                                                                                       \
    const uint32_t M = ((1u << (B)) - 1u) << 1;                                         \
    const uint32_t *c0 = col[0], *c1 = col[1], *c2 = col[2], *c3 = col[3];              \
    enum { PER = 32 / (B), TB = 2 << (B) };                                             \
    size_t j, full = n_out / PER, rem = n_out % PER, k;                                 \
    for (j = 0; j < full; j++) {                                                        \
        uint32_t x0 = c0[j], x1 = c1[j], x2 = c2[j], x3 = c3[j];                        \
        uint32_t *p = a + j * PER, *pe = p + PER;                                       \
        for (; p < pe; p += 4) {                                                        \
            p[0] += SUM4(t, TB, (x0 >> (31u - (B))) & M, (x1 >> (31u - (B))) & M,      \
                         (x2 >> (31u - (B))) & M, (x3 >> (31u - (B))) & M);             \
            p[1] += SUM4(t, TB, (x0 >> (31u - 2u * (B))) & M, (x1 >> (31u - 2u * (B))) & M, \
                         (x2 >> (31u - 2u * (B))) & M, (x3 >> (31u - 2u * (B))) & M);   \
            p[2] += SUM4(t, TB, (x0 >> (31u - 3u * (B))) & M, (x1 >> (31u - 3u * (B))) & M, \
                         (x2 >> (31u - 3u * (B))) & M, (x3 >> (31u - 3u * (B))) & M);   \
            p[3] += SUM4(t, TB, (x0 >> (31u - 4u * (B))) & M, (x1 >> (31u - 4u * (B))) & M, \
                         (x2 >> (31u - 4u * (B))) & M, (x3 >> (31u - 4u * (B))) & M);   \
            x0 <<= 4 * (B); x1 <<= 4 * (B); x2 <<= 4 * (B); x3 <<= 4 * (B);             \
        }                                                                               \
    }                                                                                   \
    if (rem) {                                                                          \
        uint32_t x0 = c0[full], x1 = c1[full], x2 = c2[full], x3 = c3[full];            \
        uint32_t *p = a + full * PER;                                                   \
        for (k = 0; k < rem; k++) {                                                     \
            unsigned s = 31u - (B) * ((unsigned)k + 1u);                                \
            p[k] += SUM4(t, TB, (x0 >> s) & M, (x1 >> s) & M, (x2 >> s) & M, (x3 >> s) & M); \
        }                                                                               \
    }                                                                                   \
}

#if BN_HAS_WTYPE(3)
DEFINE_RUN4(2)
#endif
#if BN_HAS_WTYPE(1)
DEFINE_RUN4(1)
#endif

/* acc[o] = c * wsum[o] without a multiplier (wsum NULL: 0): one pass over the
 * outputs per set bit of |c| (the MNIST background has two or three), the first
 * one storing, subtracting when c < 0. */
static BN_HOT_AUX void acc_init(int32_t c, const int32_t *wsum, size_t n_out, uint32_t *acc)
{
    uint32_t m = !wsum ? 0u : c < 0 ? 0u - (uint32_t)c : (uint32_t)c;
    uint32_t *a = acc, *end = acc + n_out;
    const int32_t *ws = wsum;
    unsigned b = 0;
    if (m == 0) {
        do
            *a = 0;
        while (++a < end);
        return;
    }
    while (!(m & 1u)) {
        m >>= 1;
        b++;
    }
    if (c < 0)
        do
            *a = 0u - ((uint32_t)*ws++ << b);
        while (++a < end);
    else
        do
            *a = (uint32_t)*ws++ << b;
        while (++a < end);
    while (m >>= 1) {
        b++;
        if (!(m & 1u))
            continue;
        a = acc;
        ws = wsum;
        if (c < 0)
            do
                *a -= (uint32_t)*ws++ << b;
            while (++a < end);
        else
            do
                *a += (uint32_t)*ws++ << b;
            while (++a < end);
    }
}

/* The pass over the inputs (SRAM on the MCU), one per type: skip inputs equal to
 * c (d = act[i] - c == 0), build the non-zero inputs' tables four at a time,
 * accumulate. Running pointers only: k * stride or i * wpc would call __mulsi3. */
typedef void (*pass_fn)(const uint32_t *, size_t, const int8_t *, size_t, size_t, int32_t,
                        uint32_t *);
#define DEFINE_PASS(NAME, BUILD, RUN4, STRIDE)                                          \
static BN_HOT void NAME(const uint32_t *w, size_t wpc, const int8_t *act, size_t n_in,    \
                        size_t n_out, int32_t c, uint32_t *u)                           \
{                                                                                       \
    int16_t tab[4 * (STRIDE)], *tk = tab;                                               \
    const uint32_t *col[4], **ck = col;                                                 \
    const int8_t *p = act, *end = act + n_in;                                           \
    do {                            /* n_in >= 1; one taken branch per skipped input */ \
        if (*p != c) {              /* else: background (centred) or ReLU zero */       \
            *ck++ = w;                                                                  \
            BUILD(tk, (uint32_t)(*p - c));                                              \
            tk += (STRIDE);                                                             \
            if (tk == tab + 4 * (STRIDE)) {                                             \
                RUN4(col, (const unsigned char *)tab, n_out, u);                        \
                tk = tab;                                                               \
                ck = col;                                                               \
            }                                                                           \
        }                                                                               \
        w += wpc;                                                                       \
    } while (++p < end);                                                                \
    if (tk != tab) {                /* 1-3 inputs left: pad with all-zero tables */     \
        while (tk < tab + 4 * (STRIDE))                                                 \
            *tk++ = 0;                                                                  \
        while (ck < col + 4)                                                            \
            *ck++ = col[0];                                                             \
        RUN4(col, (const unsigned char *)tab, n_out, u);                                \
    }                                                                                   \
}

#if BN_HAS_WTYPE(4)
DEFINE_PASS(pass_4bitsym, tab_4bitsym, RUN4_B4, 16)
#endif
#if BN_HAS_WTYPE(5)
DEFINE_PASS(pass_4bit, tab_4bit, RUN4_B4, 16)
#endif
#if BN_HAS_WTYPE(7)
DEFINE_PASS(pass_fp130, tab_fp130, RUN4_B4, 16)
#endif
#if BN_HAS_WTYPE(3)
DEFINE_PASS(pass_2bitsym, tab_2bitsym, run4_b2, 4)
#endif
#if BN_HAS_WTYPE(1)
DEFINE_PASS(pass_binary, tab_binary, run4_b1, 2)
#endif

bn_status bn_fc_cols(uint8_t wtype, const uint32_t *w, size_t wpc, const int8_t *act,
                     size_t n_in, size_t n_out, const int32_t *wsum, int32_t *acc)
{
    /* Sums are kept in uint32_t through this unsigned view of acc (same object:
     * signed and unsigned variants may alias); int32_t is two's complement, so the
     * stored words are the exact int32 results with no conversion pass. */
    uint32_t *u = (uint32_t *)acc;
    int32_t c;
    pass_fn pass;
    if (!w || !act || !acc)
        return BN_ERR_NULL;
    switch (wtype) {
#if BN_HAS_WTYPE(4)
    case BN_W_4BITSYM: pass = pass_4bitsym; break;
#endif
#if BN_HAS_WTYPE(5)
    case BN_W_4BIT: pass = pass_4bit; break;
#endif
#if BN_HAS_WTYPE(7)
    case BN_W_FP130: pass = pass_fp130; break;
#endif
#if BN_HAS_WTYPE(3)
    case BN_W_2BITSYM: pass = pass_2bitsym; break;
#endif
#if BN_HAS_WTYPE(1)
    case BN_W_BINARY: pass = pass_binary; break;
#endif
    default: return BN_ERR_WTYPE;
    }
    if (n_in == 0 || n_out == 0 || wpc != bn_row_words(wtype, n_out))
        return BN_ERR_SHAPE;
    c = wsum ? act[0] : 0;
    acc_init(c, wsum, n_out, u);
    pass(w, wpc, act, n_in, n_out, c, u);
    return BN_OK;
}

#else
typedef int bn_kernels_fast_unused;   /* ISO C: a translation unit is not empty */
#endif
