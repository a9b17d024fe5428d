/*
 * bn_kernels_fast.c - the fast FC kernels for the cols layout (bitnet.h, "FC WEIGHT
 * LAYOUTS"): bit-exact with the row kernels of bn_kernels.c, no multiplication.
 *
 * Per non-zero input d (after centring) a product table t[f] = weight(f) * d of
 * 2^bits int16 entries is built by additions; four inputs are gathered, then one
 * pass over the accumulators adds t0[f0] + t1[f1] + t2[f2] + t3[f3] per output
 * (column-major words: one word of a column holds per_word outputs' fields, so the
 * field offsets are shift + mask, the lookups are loads with constant offsets).
 * On the CH32V003 that is about 7 cycles per non-zero input-weight pair.
 * |t| <= 128 * 255 fits int16; sums are kept in uint32_t (modular, exact).
 */
#include "bitnet.h"

#if (BN_LAYOUTS & 2u)

#define TAB_MAX 16                 /* entries of the widest table (4-bit fields) */

static int32_t u2i_f(uint32_t u)
{
    return u <= 0x7FFFFFFFu ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* product tables: t[f] = weight(f) * d, built by additions and shifts */
typedef void (*tab_fn)(int16_t *t, uint32_t d);

#if BN_HAS_WTYPE(4)
static BN_HOT void tab_4bitsym(int16_t *t, uint32_t d)     /* 2f - 15 */
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
static BN_HOT void tab_4bit(int16_t *t, uint32_t d)        /* f - 8 */
{
    uint32_t v = 0u - (d << 3);
    unsigned f;
    for (f = 0; f < 16; f++, v += d)
        t[f] = (int16_t)u2i_f(v);
}
#endif

#if BN_HAS_WTYPE(7)
static BN_HOT void tab_fp130(int16_t *t, uint32_t d)       /* sign << 3 | e */
{
    unsigned e;
    for (e = 0; e < 8; e++) {
        t[e] = (int16_t)u2i_f(d << e);
        t[e + 8] = (int16_t)u2i_f(0u - (d << e));
    }
}
#endif

#if BN_HAS_WTYPE(3)
static BN_HOT void tab_2bitsym(int16_t *t, uint32_t d)     /* 2f - 3 */
{
    uint32_t d3 = (d << 1) + d;
    t[0] = (int16_t)u2i_f(0u - d3);
    t[1] = (int16_t)u2i_f(0u - d);
    t[2] = (int16_t)u2i_f(d);
    t[3] = (int16_t)u2i_f(d3);
}
#endif

#if BN_HAS_WTYPE(1)
static BN_HOT void tab_binary(int16_t *t, uint32_t d)      /* 2f - 1 */
{
    t[0] = (int16_t)u2i_f(0u - d);
    t[1] = (int16_t)u2i_f(d);
}
#endif

/* int16 entry at byte offset `off` of table K (TB bytes per table) */
#define LK(t, K, TB, off) ((int32_t)(*(const int16_t *)((t) + (K) * (TB) + (off))))

#define SUM4(t, TB, M, x0, x1, x2, x3, s)                                               \
    (uint32_t)(LK(t, 0, TB, ((x0) >> (s)) & (M)) + LK(t, 1, TB, ((x1) >> (s)) & (M))        \
               + LK(t, 2, TB, ((x2) >> (s)) & (M)) + LK(t, 3, TB, ((x3) >> (s)) & (M)))

/* Kernels for one field width B: four columns at once, and one column. Field k
 * (0 = most significant) of word x, as a byte offset into an int16 table:
 * (x >> (31 - B (k + 1))) & M; four fields per step, then the words move up by 4 B. */
#define DEFINE_COLS(B)                                                          \
static BN_HOT void cols4_##B(const uint32_t *const *col, size_t wpc, const int16_t *tab,  \
                             size_t n_out, uint32_t *acc)                               \
{                                                                                       \
    const unsigned char *t = (const unsigned char *)tab;                                \
    const uint32_t M = ((1u << (B)) - 1u) << 1;                                         \
    const uint32_t *c0 = col[0], *c1 = col[1], *c2 = col[2], *c3 = col[3];              \
    enum { PER = 32 / (B), TB = 2 << (B) };                                             \
    size_t j, full = n_out / PER, rem = n_out % PER;                                    \
    unsigned k;                                                                         \
    (void)wpc;                                                                          \
    for (j = 0; j < full; j++) {                                                        \
        uint32_t x0 = c0[j], x1 = c1[j], x2 = c2[j], x3 = c3[j];                        \
        uint32_t *p = acc + j * PER, *pe = p + PER;                                     \
        for (; p < pe; p += 4) {      /* 4 fields with constant shifts, then move on */ \
            p[0] += SUM4(t, TB, M, x0, x1, x2, x3, 31u - (B));                          \
            p[1] += SUM4(t, TB, M, x0, x1, x2, x3, 31u - 2u * (B));                     \
            p[2] += SUM4(t, TB, M, x0, x1, x2, x3, 31u - 3u * (B));                     \
            p[3] += SUM4(t, TB, M, x0, x1, x2, x3, 31u - 4u * (B));                     \
            x0 <<= 4 * (B); x1 <<= 4 * (B); x2 <<= 4 * (B); x3 <<= 4 * (B);             \
        }                                                                               \
    }                                                                                   \
    if (rem) {                    /* last word: rem < PER fields, never the last one */ \
        uint32_t x0 = c0[full], x1 = c1[full], x2 = c2[full], x3 = c3[full];            \
        uint32_t *p = acc + full * PER;                                                 \
        for (k = 0; k < rem; k++) {                                                     \
            unsigned s = 31u - (B) * (k + 1u);                                          \
            p[k] += (uint32_t)(LK(t, 0, TB, (x0 >> s) & M) + LK(t, 1, TB, (x1 >> s) & M) \
                             + LK(t, 2, TB, (x2 >> s) & M) + LK(t, 3, TB, (x3 >> s) & M)); \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
static void cols1_##B(const uint32_t *c0, size_t wpc, const int16_t *tab, size_t n_out,   \
                      uint32_t *acc)                                                    \
{                                                                                       \
    const unsigned char *t = (const unsigned char *)tab;                                \
    const uint32_t M = ((1u << (B)) - 1u) << 1;                                         \
    size_t o;                                                                           \
    (void)wpc;                                                                          \
    for (o = 0; o < n_out; o++) {                                                       \
        uint32_t x = c0[o / (32 / (B))] << ((B) * (o % (32 / (B))));                    \
        acc[o] += (uint32_t)LK(t, 0, 0, (x >> (31u - (B))) & M);                        \
    }                                                                                   \
}

typedef void (*cols4_fn)(const uint32_t *const *, size_t, const int16_t *, size_t,
                         uint32_t *);
typedef void (*cols1_fn)(const uint32_t *, size_t, const int16_t *, size_t, uint32_t *);

#if BN_HAS_WTYPE(4) || BN_HAS_WTYPE(5) || BN_HAS_WTYPE(7)
DEFINE_COLS(4)
#define HAVE_COLS4 1
#endif
#if BN_HAS_WTYPE(3)
DEFINE_COLS(2)
#endif
#if BN_HAS_WTYPE(1)
DEFINE_COLS(1)
#endif

/* c * v without a multiplier (c in -255..255): shifts and adds, modular */
static uint32_t mul_small(int32_t c, uint32_t v)
{
    uint32_t m = c < 0 ? 0u - (uint32_t)c : (uint32_t)c, r = 0;
    for (; m; m >>= 1, v <<= 1)
        if (m & 1u)
            r += v;
    return c < 0 ? 0u - r : r;
}

BN_HOT bn_status bn_fc_cols(uint8_t wtype, const uint32_t *w, size_t wpc,
                            const int8_t *act, size_t n_in, size_t n_out, const int32_t *wsum, int32_t *acc)
{
    int16_t tab[4 * TAB_MAX];
    const uint32_t *col[4];
    uint32_t *u = (uint32_t *)acc;      /* same object, unsigned view (exact sums) */
    size_t per = bn_per_word(wtype), i, o, k = 0, stride;
    int32_t c;
    tab_fn build;
    cols4_fn run4;
    cols1_fn run1;
    if (!w || !act || !acc)
        return BN_ERR_NULL;
    switch (wtype) {
#if BN_HAS_WTYPE(4)
    case BN_W_4BITSYM: build = tab_4bitsym; run4 = cols4_4; run1 = cols1_4; break;
#endif
#if BN_HAS_WTYPE(5)
    case BN_W_4BIT: build = tab_4bit; run4 = cols4_4; run1 = cols1_4; break;
#endif
#if BN_HAS_WTYPE(7)
    case BN_W_FP130: build = tab_fp130; run4 = cols4_4; run1 = cols1_4; break;
#endif
#if BN_HAS_WTYPE(3)
    case BN_W_2BITSYM: build = tab_2bitsym; run4 = cols4_2; run1 = cols1_2; break;
#endif
#if BN_HAS_WTYPE(1)
    case BN_W_BINARY: build = tab_binary; run4 = cols4_1; run1 = cols1_1; break;
#endif
    default: return BN_ERR_WTYPE;
    }
    if (n_in == 0 || n_out == 0 || wpc != (n_out + per - 1) / per)
        return BN_ERR_SHAPE;
    stride = (size_t)1 << (32 / per);      /* table entries: 2^bits */
    c = wsum ? act[0] : 0;
    for (o = 0; o < n_out; o++)
        u[o] = wsum ? mul_small(c, (uint32_t)wsum[o]) : 0u;
    for (i = 0; i < n_in; i++) {
        int32_t d = act[i] - c;
        int16_t *tk;
        if (d == 0)
            continue;
        tk = tab + k * stride;
        col[k] = w + i * wpc;
        build(tk, (uint32_t)d);
        if (++k == 4) {
            run4(col, wpc, tab, n_out, u);
            k = 0;
        }
    }
    for (i = 0; i < k; i++)
        run1(col[i], wpc, tab + i * stride, n_out, u);
    for (o = 0; o < n_out; o++)
        acc[o] = u2i_f(u[o]);
    return BN_OK;
}

#else
typedef int bn_kernels_fast_unused;   /* ISO C: a translation unit is not empty */
#endif
