/*
 * bn_kernels_fast.c - the fast FC kernels for the cols layout (bitnet.h, "FC WEIGHT
 * LAYOUTS"): bit-exact with the row kernels of bn_kernels.c, no multiplication.
 *
 * Per non-zero input d (after centring) a product table t[f] = weight(f) * d of
 * 2^bits int16 entries is built by additions; four inputs are gathered, then one
 * pass over the accumulators adds t0[f0] + t1[f1] + t2[f2] + t3[f3] per output
 * (column-major words: one word of a column holds per_word outputs' fields, so the
 * field offsets are shift + mask, the lookups are loads with constant offsets).
 * The last 1-3 inputs of a layer run with all-zero tables. 4-bit types hold 8
 * outputs in registers across a chunk of inputs (tile4), Ternary and Binary share
 * one table between two / four inputs. On the CH32V003 the hot parts are RV32EC
 * assembly (bn_kernels_rv32e.S; the 4-bit lookups cost 6 cycles per non-zero
 * input-weight pair), checked against these C versions by the emulator.
 * |t| <= 128 * 255 fits int16; sums are kept in uint32_t (modular, exact).
 */
#include "bitnet.h"

#ifndef BN_RUN4_ASM
#define BN_RUN4_ASM 0     /* 1: tile4 and the 4bitsym pass from bn_kernels_rv32e.S (RV32E firmware) */
#endif

static inline int32_t u2i_f(uint32_t u)   /* exact int32 value of a two's-complement word */
{
    return u <= 0x7FFFFFFFu ? (int32_t)u : -(int32_t)(~u) - 1;
}

#if (BN_LAYOUTS & 2u)


/* product tables: t[f] = weight(f) * d, built by additions and shifts (inlined
 * into the pass of their type) */

#if BN_HAS_FC_WTYPE(4) && !BN_RUN4_ASM
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

#if BN_HAS_FC_WTYPE(5)
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

#if BN_HAS_FC_WTYPE(7)
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

#if BN_HAS_FC_WTYPE(8)
static void tab_nf4(int16_t *t, uint32_t d)         /* bn_nf4_table[f] * d, shift-add */
{
    uint32_t d2 = d << 1, d4 = d << 2, d8 = d << 3, d64 = d << 6;
    uint32_t d10 = d8 + d2, d12 = d8 + d4, d23 = (d12 << 1) - d, d31 = (d << 5) - d;
    t[0] = (int16_t)u2i_f(d - (d64 << 1));                  /* -127 */
    t[1] = (int16_t)u2i_f(0u - ((d10 + d) << 3));           /* -88 = -8 * 11 */
    t[2] = (int16_t)u2i_f(0u - (d64 + d2 + d));             /* -67 */
    t[3] = (int16_t)u2i_f(0u - ((d23 + d2) << 1));          /* -50 = -2 * 25 */
    t[4] = (int16_t)u2i_f(0u - ((d << 5) + d4));            /* -36 */
    t[5] = (int16_t)u2i_f(0u - d23);                        /* -23 */
    t[6] = (int16_t)u2i_f(0u - d12);                        /* -12 */
    t[7] = 0;
    t[8] = (int16_t)u2i_f(d10);                             /* 10 */
    t[9] = (int16_t)u2i_f(d10 << 1);                        /* 20 */
    t[10] = (int16_t)u2i_f(d31);                            /* 31 */
    t[11] = (int16_t)u2i_f(d31 + d12);                      /* 43 */
    t[12] = (int16_t)u2i_f(d64 - d8);                       /* 56 */
    t[13] = (int16_t)u2i_f(d64 + d8 - d);                   /* 71 */
    t[14] = (int16_t)u2i_f(d23 << 2);                       /* 92 */
    t[15] = (int16_t)u2i_f((d64 << 1) - d);                 /* 127 */
}
#endif

#if BN_HAS_FC_WTYPE(3)
static void tab_2bitsym(int16_t *t, uint32_t d)     /* 2f - 3 */
{
    uint32_t d3 = (d << 1) + d;
    t[0] = (int16_t)u2i_f(0u - d3);
    t[1] = (int16_t)u2i_f(0u - d);
    t[2] = (int16_t)u2i_f(d);
    t[3] = (int16_t)u2i_f(d3);
}
#endif


/* Accumulate kernels: G = 4 non-zero inputs per pass (their tables contiguous, TB
 * bytes each, at t), one pass over the out accumulators. A column word holds PER
 * outputs' fields, field k (0 = most significant) of width B; as a byte offset into
 * an int16 table it is (x >> (31 - B (k + 1))) & M, M = (2^B - 1) << 1. */
#define LK(t, K, TB, off) ((uint32_t)(int32_t)(*(const int16_t *)((t) + (K) * (TB) + (off))))
#define SUM4(t, TB, o0, o1, o2, o3)                                                      \
    (LK(t, 0, TB, o0) + LK(t, 1, TB, o1) + LK(t, 2, TB, o2) + LK(t, 3, TB, o3))

#ifndef BN_TILE_K
#define BN_TILE_K 8       /* non-zero inputs per chunk of the 4-bit kernels (stack:
                             BN_TILE_K entries of 36 bytes on RV32) */
#endif

/* 4-bit fields (4bitsym, 4bit, FP130, NF4): register tiles. The pass collects up to
 * BN_TILE_K non-zero inputs, each an entry (its column and its 16-entry table); then
 * tile4 runs over the outputs in tiles of 8 (one column word per input), holding
 * the tile's 8 accumulators in registers across all the chunk's inputs: per input
 * and tile one column word, then per output srli, andi, add, lh, add (6 cycles per
 * non-zero input-weight pair in the RV32EC version), and an accumulator is loaded
 * and stored once per chunk instead of once per four inputs. zero = 1: the
 * accumulators start from 0 (not loaded). A last tile of n_out % 8 outputs runs
 * the same code and stores only its outputs. */
typedef struct {
    const uint32_t *col;      /* the input's column (words_per_col words) */
    int16_t t[16];            /* t[f] = weight(f) * d */
} bn_tab4;

#if BN_HAS_FC_WTYPE(4) || BN_HAS_FC_WTYPE(5) || BN_HAS_FC_WTYPE(7) || BN_HAS_FC_WTYPE(8)
#if BN_RUN4_ASM
void bn_tile4_rv32e(const bn_tab4 *e, size_t k, size_t n_out, uint32_t *acc, uint32_t zero);
#define TILE4 bn_tile4_rv32e
#else
#define TILE4 tile4
static BN_HOT void tile4(const bn_tab4 *e, size_t k, size_t n_out, uint32_t *a, uint32_t zero)
{
    size_t t, j, m, n;
    for (t = 0; n_out; t++, a += n, n_out -= n) {
        uint32_t s[8];
        n = n_out < 8 ? n_out : 8;
        for (j = 0; j < 8; j++)
            s[j] = (zero || j >= n) ? 0u : a[j];
        for (m = 0; m < k; m++) {
            uint32_t x = e[m].col[t];
            for (j = 0; j < 8; j++)
                s[j] += (uint32_t)(int32_t)e[m].t[(x >> (28u - 4u * (unsigned)j)) & 15u];
        }
        for (j = 0; j < n; j++)
            a[j] = s[j];
    }
}
#endif
#endif

/* 2-bit fields (2bitsym): four fields per step, the words shifted on. */
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

#if BN_HAS_FC_WTYPE(3)
DEFINE_RUN4(2)
#endif
#if BN_HAS_FC_WTYPE(1)
/* Binary: four inputs share one 16-entry table, t[i] = sum over k of (bit k of i ?
 * d_k : -d_k), so one lookup serves four input-weight pairs. A column word holds 32
 * outputs' bits, output o at bit 31 - o; the four columns' bits of outputs at bits
 * 4n + s (n = 0..7) are gathered into the nibbles of one word z_s (input k at bit
 * 4n + k), 14 operations for 8 outputs. */
#define M1 0x11111111u
#define TB1(t, o) ((uint32_t)(int32_t)(*(const int16_t *)((const unsigned char *)(t) + (o))))
static BN_HOT void tab_bin4(int16_t *t, const uint32_t *d)
{
    uint32_t v = 0u - d[0] - d[1] - d[2] - d[3];
    size_t k, h, i;
    t[0] = (int16_t)u2i_f(v);
    for (k = 0, h = 1; k < 4; k++, h <<= 1)      /* t[h + i] = t[i] + 2 d_k */
        for (i = 0; i < h; i++)
            t[h + i] = (int16_t)u2i_f((uint32_t)(int32_t)t[i] + (d[k] << 1));
}

static BN_HOT void run4_b1(const uint32_t *const *col, const int16_t *t, size_t n_out,
                           uint32_t *a)
{
    const uint32_t *c0 = col[0], *c1 = col[1], *c2 = col[2], *c3 = col[3];
    size_t j, full = n_out >> 5, rem = n_out & 31u, o;
    for (j = 0; j < full; j++, a += 32) {
        uint32_t x0 = c0[j], x1 = c1[j], x2 = c2[j], x3 = c3[j];
        uint32_t *p = a + 31;                   /* output 31 - s - 4n */
        do {
            uint32_t z = (x0 & M1) | ((x1 & M1) << 1) | ((x2 & M1) << 2) | ((x3 & M1) << 3);
            x0 >>= 1; x1 >>= 1; x2 >>= 1; x3 >>= 1;
            p[0] += TB1(t, (z << 1) & 30u);
            p[-4] += TB1(t, (z >> 3) & 30u);
            p[-8] += TB1(t, (z >> 7) & 30u);
            p[-12] += TB1(t, (z >> 11) & 30u);
            p[-16] += TB1(t, (z >> 15) & 30u);
            p[-20] += TB1(t, (z >> 19) & 30u);
            p[-24] += TB1(t, (z >> 23) & 30u);
            p[-28] += TB1(t, (z >> 27) & 30u);
        } while (--p > a + 27);
    }
    if (rem) {                                  /* the last word: outputs 0..rem-1 */
        uint32_t x0 = c0[full], x1 = c1[full], x2 = c2[full], x3 = c3[full];
        for (o = 0; o < rem; o++) {
            unsigned b = 31u - (unsigned)o;
            uint32_t i = ((x0 >> b) & 1u) | (((x1 >> b) & 1u) << 1) | (((x2 >> b) & 1u) << 2)
                         | (((x3 >> b) & 1u) << 3);
            a[o] += TB1(t, i << 1);
        }
    }
}

/* inputs four at a time (columns and d), the last 1-3 padded with d = 0 */
static BN_HOT void pass_binary(const uint32_t *w, size_t wpc, const int8_t *act, size_t n_in,
                               size_t n_out, int32_t c, uint32_t *u, uint32_t zero)
{
    int16_t tab[16];
    const uint32_t *col[4];
    uint32_t d[4];
    const int8_t *p = act, *end = act + n_in;
    size_t k = 0;
    (void)zero;                     /* acc set up by acc_init */
    do {
        if (*p != c) {
            col[k] = w;
            d[k] = (uint32_t)(*p - c);
            if (++k == 4) {
                tab_bin4(tab, d);
                run4_b1(col, tab, n_out, u);
                k = 0;
            }
        }
        w += wpc;
    } while (++p < end);
    if (k) {
        for (; k < 4; k++) {
            col[k] = col[0];
            d[k] = 0;
        }
        tab_bin4(tab, d);
        run4_b1(col, tab, n_out, u);
    }
}
#endif

#if BN_HAS_FC_WTYPE(2)
/* Ternary: a column byte holds 5 outputs' trits (bitnet.h). tern_lut[b] spreads
 * them to 4-bit spacing, t0 << 16 | t1 << 12 | t2 << 8 | t3 << 4 | t4 (t in 0..2),
 * flash, computed by the compiler; bytes > 242 map to TERN_BAD. Two inputs a, b
 * share one 16-entry table indexed by 4 ta + tb: (lut[ba] << 2) | lut[bb] gives the
 * five outputs' indices at once, so one lookup serves two input-weight pairs. */
#define TERN_BAD 0x01000000u     /* in bit 24 or, after << 2, 26: never a nibble */
#define TL(b) ((b) > 242 ? TERN_BAD : (uint32_t)(((b) / 81 % 3) << 16 | ((b) / 27 % 3) << 12 \
               | ((b) / 9 % 3) << 8 | ((b) / 3 % 3) << 4 | (b) % 3))
#define TL4(b) TL(b), TL((b) + 1), TL((b) + 2), TL((b) + 3)
#define TL16(b) TL4(b), TL4((b) + 4), TL4((b) + 8), TL4((b) + 12)
#define TL64(b) TL16(b), TL16((b) + 16), TL16((b) + 32), TL16((b) + 48)
#ifndef BN_TERN_ASM
#define BN_TERN_ASM 0     /* 1: run4_tern from bn_kernels_rv32e.S (RV32E firmware) */
#endif
#if BN_TERN_ASM
#define tern_lut bn_tern_lut  /* read by the assembly kernel */
const uint32_t bn_tern_lut[256];
#else
static
#endif
const uint32_t tern_lut[256] = { TL64(0), TL64(64), TL64(128), TL64(192) };

/* t[4 ta + tb] = (ta - 1) da + (tb - 1) db; entries 3, 7, 11..15 never read */
static BN_HOT void tab_tern2(int16_t *t, uint32_t da, uint32_t db)
{
    t[0] = (int16_t)u2i_f(0u - da - db);
    t[1] = (int16_t)u2i_f(0u - da);
    t[2] = (int16_t)u2i_f(db - da);
    t[4] = (int16_t)u2i_f(0u - db);
    t[5] = 0;
    t[6] = (int16_t)u2i_f(db);
    t[8] = (int16_t)u2i_f(da - db);
    t[9] = (int16_t)u2i_f(da);
    t[10] = (int16_t)u2i_f(da + db);
}

/* Four inputs per pass over the accumulators (two pair tables t, t + 16; the
 * column words re-read per byte: few live values for RV32E's
 * registers). Returns the TERN_BAD bits seen. */
#define TK(t, o) ((uint32_t)(int32_t)(*(const int16_t *)((t) + (o))))
#define TBYTE(s)                                                                        \
    do {                                                                                \
        y01 = (tern_lut[(c0[0] >> (s)) & 255u] << 2) | tern_lut[(c1[0] >> (s)) & 255u]; \
        y23 = (tern_lut[(c2[0] >> (s)) & 255u] << 2) | tern_lut[(c3[0] >> (s)) & 255u]; \
        bad |= y01 | y23;                                                               \
        if ((size_t)(end - p) <= 5)                                                     \
            goto last;                                                                  \
        p[0] += TK(t, (y01 >> 15) & 30u) + TK(t, ((y23 >> 15) & 30u) + 32u);           \
        p[1] += TK(t, (y01 >> 11) & 30u) + TK(t, ((y23 >> 11) & 30u) + 32u);           \
        p[2] += TK(t, (y01 >> 7) & 30u) + TK(t, ((y23 >> 7) & 30u) + 32u);             \
        p[3] += TK(t, (y01 >> 3) & 30u) + TK(t, ((y23 >> 3) & 30u) + 32u);             \
        p[4] += TK(t, (y01 << 1) & 30u) + TK(t, ((y23 << 1) & 30u) + 32u);             \
        p += 5;                                                                         \
    } while (0)
#if BN_TERN_ASM
uint32_t bn_run4_tern_rv32e(const uint32_t *const *col, const unsigned char *t,
                            size_t n_out, uint32_t *p);
#define run4_tern bn_run4_tern_rv32e
#else
static BN_HOT uint32_t run4_tern(const uint32_t *const *col, const unsigned char *t,
                                 size_t n_out, uint32_t *p)
{
    const uint32_t *c0 = col[0], *c1 = col[1], *c2 = col[2], *c3 = col[3];
    uint32_t bad = 0, *end = p + n_out, y01, y23;
    size_t k, n;
    unsigned sh;
    for (;; c0++, c1++, c2++, c3++)
        for (sh = 32; sh; ) {
            sh -= 8;
            TBYTE(sh);
        }
last:
    for (n = (size_t)(end - p), k = 0; k < n; k++) {
        unsigned s = 16u - 4u * (unsigned)k;
        p[k] += TK(t, ((y01 << 1) >> s) & 30u) + TK(t, (((y23 << 1) >> s) & 30u) + 32u);
    }
    return bad & (TERN_BAD | TERN_BAD << 2);
}
#endif

/* inputs four at a time (columns and d), the last 1-3 padded with d = 0 */
static BN_HOT void pass_ternary(const uint32_t *w, size_t wpc, const int8_t *act, size_t n_in,
                                size_t n_out, int32_t c, uint32_t *u, uint32_t *bad)
{
    int16_t tab[32];
    const uint32_t *col[4];
    uint32_t d[4], b = 0;
    const int8_t *p = act, *end = act + n_in;
    size_t k = 0;
    do {
        if (*p != c) {
            col[k] = w;
            d[k] = (uint32_t)(*p - c);
            if (++k == 4) {
                tab_tern2(tab, d[0], d[1]);
                tab_tern2(tab + 16, d[2], d[3]);
                b |= run4_tern(col, (const unsigned char *)tab, n_out, u);
                k = 0;
            }
        }
        w += wpc;
    } while (++p < end);
    if (k) {
        for (; k < 4; k++) {
            col[k] = col[0];
            d[k] = 0;
        }
        tab_tern2(tab, d[0], d[1]);
        tab_tern2(tab + 16, d[2], d[3]);
        b |= run4_tern(col, (const unsigned char *)tab, n_out, u);
    }
    *bad = b;
}
#endif

/* The assembly firmware keeps acc_init in flash: bn_accinit3_rv32e does the usual
 * cases (zero, 1-4 set bits of |c|), and the SRAM goes to the kernels. */
#if BN_RUN4_ASM
#define BN_INIT_MEM
#else
#define BN_INIT_MEM BN_HOT_AUX
#endif

#if BN_RUN4_ASM
/* bn_kernels_rv32e.S: acc[o] = c * wsum[o] in one pass when |c| has 1-3 set bits at
 * b1 < b2 < b3 (d2 = b2 - b1, d3 = b3 - b2; -1: absent), neg = -1 when c < 0;
 * wsum NULL: acc[o] = 0 */
void bn_accinit3_rv32e(const int32_t *wsum, size_t n_out, uint32_t *acc, uint32_t b1,
                       int32_t d2, int32_t d3, uint32_t neg);

static int accinit3(int32_t c, const int32_t *wsum, size_t n_out, uint32_t *acc)
{
    uint32_t m = c < 0 ? 0u - (uint32_t)c : (uint32_t)c;
    int32_t b[3] = {-1, -1, -1}, i;
    size_t k = 0;
    uint32_t *a, *end = acc + n_out;
    for (i = 0; m; i++, m >>= 1)
        if (m & 1u) {
            if (k == 3)
                break;              /* a fourth set bit: one more pass below */
            b[k++] = i;
        }
    if (!wsum || c == 0) {          /* acc = 0 */
        bn_accinit3_rv32e(0, n_out, acc, 0, -1, -1, 0);
        return 0;
    }
    if (m >> 1)
        return 1;                   /* five or more set bits: acc_init */
    bn_accinit3_rv32e(wsum, n_out, acc, (uint32_t)b[0], k > 1 ? b[1] - b[0] : -1,
                      k > 2 ? b[2] - b[1] : -1, c < 0 ? 0xFFFFFFFFu : 0u);
    if (m)                          /* the fourth bit, at i */
        for (a = acc; a < end; a++, wsum++)
            *a = c < 0 ? *a - ((uint32_t)*wsum << i) : *a + ((uint32_t)*wsum << i);
    return 0;
}
#endif

/* acc[o] = c * wsum[o] without a multiplier (wsum NULL: 0): one pass over the
 * outputs per set bit of |c| (the MNIST background has two or three), the first
 * one storing, subtracting when c < 0. */
static BN_INIT_MEM void acc_init(int32_t c, const int32_t *wsum, size_t n_out, uint32_t *acc)
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
 * c (d = act[i] - c == 0), build the non-zero inputs' tables, accumulate (4-bit
 * types: chunks of BN_TILE_K inputs through tile4; zero = 1: acc starts from 0, not
 * set up by acc_init; narrower types: four at a time through their run4, acc set up
 * by acc_init). Running pointers only: k * stride or i * wpc would call __mulsi3. */
typedef void (*pass_fn)(const uint32_t *, size_t, const int8_t *, size_t, size_t, int32_t,
                        uint32_t *, uint32_t);
#define DEFINE_PASS4(NAME, BUILD)                                                       \
static BN_HOT void NAME(const uint32_t *w, size_t wpc, const int8_t *act, size_t n_in,    \
                        size_t n_out, int32_t c, uint32_t *u, uint32_t zero)            \
{                                                                                       \
    bn_tab4 tab[BN_TILE_K], *e = tab;                                                   \
    size_t k = 0;                   /* e - tab (a pointer difference divides by 36) */  \
    const int8_t *p = act, *end = act + n_in;                                           \
    do {                            /* n_in >= 1; one taken branch per skipped input */ \
        if (*p != c) {              /* else: background (centred) or ReLU zero */       \
            e->col = w;                                                                 \
            BUILD(e->t, (uint32_t)(*p - c));                                            \
            e++;                                                                        \
            if (++k == BN_TILE_K) {                                                     \
                TILE4(tab, BN_TILE_K, n_out, u, zero);                                  \
                zero = 0;                                                               \
                e = tab;                                                                \
                k = 0;                                                                  \
            }                                                                           \
        }                                                                               \
        w += wpc;                                                                       \
    } while (++p < end);                                                                \
    if (k || zero)                  /* the last chunk; or no input at all: acc = 0 */   \
        TILE4(tab, k, n_out, u, zero);                                                  \
}

#define DEFINE_PASS(NAME, BUILD, RUN4, STRIDE)                                          \
static BN_HOT void NAME(const uint32_t *w, size_t wpc, const int8_t *act, size_t n_in,    \
                        size_t n_out, int32_t c, uint32_t *u, uint32_t zero)            \
{                                                                                       \
    int16_t tab[4 * (STRIDE)], *tk = tab;                                               \
    const uint32_t *col[4], **ck = col;                                                 \
    const int8_t *p = act, *end = act + n_in;                                           \
    (void)zero;                     /* acc set up by acc_init */                        \
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

#if BN_HAS_FC_WTYPE(4)
#if BN_RUN4_ASM
/* bn_kernels_rv32e.S: the same pass in RV32EC (word-wise skip, paired table stores) */
void bn_pass4sym_rv32e(const uint32_t *w, size_t wpc, const int8_t *act, size_t n_in,
                       size_t n_out, int32_t c, uint32_t *u, uint32_t zero);
#define pass_4bitsym bn_pass4sym_rv32e
#else
DEFINE_PASS4(pass_4bitsym, tab_4bitsym)
#endif
#endif
#if BN_HAS_FC_WTYPE(5)
DEFINE_PASS4(pass_4bit, tab_4bit)
#endif
#if BN_HAS_FC_WTYPE(7)
DEFINE_PASS4(pass_fp130, tab_fp130)
#endif
#if BN_HAS_FC_WTYPE(8)
DEFINE_PASS4(pass_nf4, tab_nf4)
#endif
#if BN_HAS_FC_WTYPE(3)
DEFINE_PASS(pass_2bitsym, tab_2bitsym, run4_b2, 4)
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
    uint32_t tiles = 0;             /* 4-bit tile kernel: zeroes acc itself */
    if (!w || !act || !acc)
        return BN_ERR_NULL;
#if !BN_FC_CENTRE
    if (wsum)                       /* a build without centring (bitnet.h) */
        return BN_ERR_LAYER;
#endif
    switch (wtype) {
#if BN_HAS_FC_WTYPE(4)
    case BN_W_4BITSYM: pass = pass_4bitsym; tiles = 1; break;
#endif
#if BN_HAS_FC_WTYPE(5)
    case BN_W_4BIT: pass = pass_4bit; tiles = 1; break;
#endif
#if BN_HAS_FC_WTYPE(7)
    case BN_W_FP130: pass = pass_fp130; tiles = 1; break;
#endif
#if BN_HAS_FC_WTYPE(8)
    case BN_W_NF4: pass = pass_nf4; tiles = 1; break;
#endif
#if BN_HAS_FC_WTYPE(3)
    case BN_W_2BITSYM: pass = pass_2bitsym; break;
#endif
#if BN_HAS_FC_WTYPE(1)
    case BN_W_BINARY: pass = pass_binary; break;
#endif
#if BN_HAS_FC_WTYPE(2)
    case BN_W_TERNARY: pass = 0; break;      /* below: its own pass */
#endif
#if BN_HAS_FC_WTYPE(9)
    case BN_W_4P6:          /* bn_kernels.c; (void): a 4p6-only build uses no helper here */
        (void)u2i_f;
        return bn_fc_cols_4p6(w, wpc, act, n_in, n_out, wsum, acc);
#endif
    default: return BN_ERR_WTYPE;
    }
    if (n_in == 0 || n_out == 0)
        return BN_ERR_SHAPE;
#if BN_HAS_FC_WTYPE(2)
    if (wtype == BN_W_TERNARY) {    /* wpc = ceil(n_out / 20) without a divider */
        uint32_t bad = 0;
        size_t w20 = (wpc << 4) + (wpc << 2);
        if (wpc == 0 || w20 < n_out || w20 - 20u >= n_out)
            return BN_ERR_SHAPE;
        c = wsum ? act[0] : 0;
#if BN_RUN4_ASM
        if (accinit3(c, wsum, n_out, u))
#endif
            acc_init(c, wsum, n_out, u);
        pass_ternary(w, wpc, act, n_in, n_out, c, u, &bad);
        return bad ? BN_ERR_CORRUPT : BN_OK;
    }
#endif
    if (wpc != bn_row_words(wtype, n_out))
        return BN_ERR_SHAPE;
    c = wsum ? act[0] : 0;
    if (wsum || !tiles) {
#if BN_RUN4_ASM
        if (accinit3(c, wsum, n_out, u))
#endif
            acc_init(c, wsum, n_out, u);
    }
    pass(w, wpc, act, n_in, n_out, c, u, (uint32_t)(tiles && !wsum));
    return BN_OK;
}

#endif   /* BN_LAYOUTS & 2 */

#if defined(BN_ROWS_FAST) && BN_ROWS_FAST && (BN_LAYOUTS & 1u) && BN_HAS_FC_WTYPE(1)
/* Binary in the rows layout, for the fast firmware when a model's cols layout does
 * not fit the flash (the 12 KB Binary table: cols pads every column to whole words
 * and needs wsum): bit-exact with bn_fc. Per row word (32 inputs) eight 16-entry
 * tables, one per group of four inputs, t_g[i] = sum over k of (bit 3 - k of i ?
 * a_k : -a_k) (a = 0 past n_in: the padding bits read 0 = weight -1), then per
 * output one word and eight lookups: every input, no skipping, 1.9 cycles per pair. */
#define TR(t, g, o) ((uint32_t)(int32_t)(*(const int16_t *)((const unsigned char *)(t) + 32 * (g) + (o))))
static BN_HOT void rows_b1_word(const uint32_t *w, size_t wpr, const int16_t *t, size_t n_out,
                                uint32_t *a)
{
    uint32_t *end = a + n_out;
    do {
        uint32_t x = *w;
        *a += TR(t, 0, (x >> 27) & 30u) + TR(t, 1, (x >> 23) & 30u) + TR(t, 2, (x >> 19) & 30u)
              + TR(t, 3, (x >> 15) & 30u) + TR(t, 4, (x >> 11) & 30u)
              + TR(t, 5, (x >> 7) & 30u) + TR(t, 6, (x >> 3) & 30u) + TR(t, 7, (x << 1) & 30u);
        w += wpr;
    } while (++a < end);
}

/* the eight tables of a row word's 32 inputs act[0..], n of them real (n < 32: the
 * last word) */
static BN_HOT void rows_b1_tabs(int16_t *t, const int8_t *act, size_t n)
{
    size_t k, i;
    for (k = 0; k < 32; k += 4, t += 16) {
        uint32_t d0 = k < n ? (uint32_t)(int32_t)act[k] : 0u;
        uint32_t d1 = k + 1 < n ? (uint32_t)(int32_t)act[k + 1] : 0u;
        uint32_t d2 = k + 2 < n ? (uint32_t)(int32_t)act[k + 2] : 0u;
        uint32_t d3 = k + 3 < n ? (uint32_t)(int32_t)act[k + 3] : 0u;
        uint32_t v = 0u - d0 - d1 - d2 - d3;     /* index bit 3 - m: input m */
        t[0] = (int16_t)u2i_f(v);
        t[1] = (int16_t)u2i_f(v += d3 << 1);
        for (i = 0; i < 2; i++)
            t[2 + i] = (int16_t)u2i_f((uint32_t)(int32_t)t[i] + (d2 << 1));
        for (i = 0; i < 4; i++)
            t[4 + i] = (int16_t)u2i_f((uint32_t)(int32_t)t[i] + (d1 << 1));
        for (i = 0; i < 8; i++)
            t[8 + i] = (int16_t)u2i_f((uint32_t)(int32_t)t[i] + (d0 << 1));
    }
}

bn_status bn_fc_rows_binary_fast(const uint32_t *w, size_t wpr, const int8_t *act,
                                 size_t n_in, size_t n_out, int32_t *acc)
{
    int16_t tab[8 * 16];
    uint32_t *u = (uint32_t *)acc, *a;
    size_t j;
    if (!w || !act || !acc)
        return BN_ERR_NULL;
    if (n_in == 0 || n_out == 0 || wpr != bn_row_words(BN_W_BINARY, n_in))
        return BN_ERR_SHAPE;
    for (a = u; a < u + n_out; a++)
        *a = 0;
    for (j = 0; j < wpr; j++, w++, act += 32) {
        rows_b1_tabs(tab, act, n_in - 32 * j);
        rows_b1_word(w, wpr, tab, n_out, u);
    }
    return BN_OK;
}
#endif
