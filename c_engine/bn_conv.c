/*
 * bn_conv.c - the conv kernels: the plain reference (bn_conv3x3_relu, bn_maxpool2x2,
 * the oracle of the tests) and the runner's kernels bn_conv3x3_i8 / bn_conv3x3_i16
 * (conv, ReLU, rounding shift, saturation and the 2x2 max-pool in one pass; the same
 * integers as the reference, tested bit for bit). Contract: bitnet.h.
 *
 * BN_CONV_FAST (default 1; the firmware's baseline builds 0) chooses how the runner's
 * kernels form the products w * x:
 *   1  product tables, built by additions once per call: t[k][n] = w[k] * n for the
 *      4-bit digits n = 0..15 of an input, so a product costs one table lookup per
 *      digit (two for inputs below 128, four above; RV32EC has no multiplier and
 *      libgcc's __mulsi3 loops over the bits); zero inputs are skipped (out of line).
 *      The int8 image is centred on its smallest pixel m (m * sum(w) is the base of
 *      every sum): background pixels are zero inputs, every other input 1..255.
 *   0  plain products (the write-up's C code; __mulsi3 on RV32EC).
 * Both kernels run one row kernel (conv_row) over three int16 input rows: _i16 on the
 * map itself, _i8 on a ring of three image rows widened to int16 on the stack.
 * Sums are uint32_t (modular), converted back exactly.
 */
#include "bn_conv.h"

#ifndef BN_CONV_FAST
#define BN_CONV_FAST 1
#endif
#if defined(__GNUC__)
#define BN_UNLIKELY(c) __builtin_expect(!!(c), 0)
#else
#define BN_UNLIKELY(c) (c)
#endif

static int16_t sat16(uint32_t v)
{
    return (int16_t)(v > (uint32_t)BN_ACT16_MAX ? (uint32_t)BN_ACT16_MAX : v);
}

/* ReLU, rounding shift, saturation of a uint32 holding an int32 sum */
static int16_t relu_shift(uint32_t s, uint32_t half, unsigned shift)
{
    /* s holds a positive int32 iff bit 31 is clear and s != 0 */
    return (s == 0u || (s & 0x80000000u)) ? 0 : sat16((s + half) >> shift);
}

bn_status bn_conv3x3_relu(const int16_t *in, size_t side, const int16_t *w, uint8_t shift,
                          int16_t *out)
{
    size_t y, x, k, o;
    uint32_t half;
    if (!in || !w || !out)
        return BN_ERR_NULL;
    if (side < 3 || shift > 30)
        return BN_ERR_SHAPE;
    o = side - 2;
    half = shift ? 1u << (shift - 1u) : 0u;
    for (y = 0; y < o; y++)
        for (x = 0; x < o; x++) {
            uint32_t s = 0;
            for (k = 0; k < 9; k++)
                s += (uint32_t)((int32_t)w[k] * in[(y + k / 3) * side + x + k % 3]);
            out[y * o + x] = relu_shift(s, half, shift);
        }
    return BN_OK;
}

bn_status bn_maxpool2x2(const int16_t *in, size_t side, int16_t *out)
{
    size_t y, x, o = side / 2;
    if (!in || !out)
        return BN_ERR_NULL;
    if (side < 2 || side % 2)
        return BN_ERR_SHAPE;
    for (y = 0; y < o; y++) {
        for (x = 0; x < o; x++) {
            const int16_t *p = in + 2 * y * side + 2 * x;
            int16_t m = p[0];
            if (p[1] > m) m = p[1];
            if (p[side] > m) m = p[side];
            if (p[side + 1] > m) m = p[side + 1];
            out[y * o + x] = m;
        }
    }
    return BN_OK;
}

/* What a conv row needs besides its input rows (RV32E passes six arguments in
 * registers). w: the weights (plain products) or the product tables (fast). */
typedef struct {
    const int16_t *w;
    uint32_t base, half;     /* sum of the centred-out inputs' products; rounding */
    uint8_t shift, pool;
    uint8_t yodd;            /* pool: the second conv row of a pooled row */
    uint16_t o;              /* outputs of the row */
} conv_args;

#if BN_CONV_FAST
/* table entry of tap k at byte offset b (an even number 0..30: digit n at 2n) */
#define TV(k, b) ((uint32_t)(int32_t)*(const int16_t *)(const void *)(tb + 32 * (k) + (b)))
/* w[k] * x from the tables, x read as 16 bits (a centred image pixel 0..255 or a conv
 * map entry 0..32767): digit 0 into s, digit 1 into h (s + 16 h at the end), digit 2
 * only when x >= 256, digit 3 only when x >= 4096 (rare in a map); 0 skipped (out of
 * line). u_ holds 2x, so a digit masked with 30 is its byte offset in the table. */
#define TAP(k, r, i)                                                                    \
    do {                                                                                \
        uint32_t u_ = (r)[i];                                                           \
        if (BN_UNLIKELY(u_ != 0)) {                                                     \
            u_ <<= 1;                                                                   \
            s += TV(k, u_ & 30u);                                                       \
            h += TV(k, (u_ >> 4) & 30u);                                                \
            if (u_ >= 512u) {                                                           \
                s += TV(k, (u_ >> 8) & 30u) << 8;                                       \
                if (u_ >= 8192u)                                                        \
                    h += TV(k, (u_ >> 12) & 30u) << 8;                                  \
            }                                                                           \
        }                                                                               \
    } while (0)
#else
#define TAP(k, r, i) (s += (uint32_t)((int32_t)a->w[k] * (int16_t)(r)[i]))
#endif

/* One output row from input rows r0 r1 r2 (16-bit entries): output x goes to
 * q[x >> pool], stored by the first of the (up to four) outputs that pool into it
 * and max-ed by the others (outputs are >= 0). */
static BN_HOT_CONV void conv_row(const uint16_t *r0, const uint16_t *r1, const uint16_t *r2,
                                 const conv_args *a, int16_t *q)
{
    const uint16_t *end = r0 + a->o;
#if BN_CONV_FAST
    const unsigned char *tb = (const unsigned char *)a->w;
#endif
    unsigned x = 0, first = a->yodd ? 0u : 1u;
    for (; r0 < end; r0++, r1++, r2++, x++) {
        uint32_t s = a->base, h = 0;
        int16_t v, *p = q + (x >> a->pool);
        TAP(0, r0, 0); TAP(1, r0, 1); TAP(2, r0, 2);
        TAP(3, r1, 0); TAP(4, r1, 1); TAP(5, r1, 2);
        TAP(6, r2, 0); TAP(7, r2, 1); TAP(8, r2, 2);
        v = relu_shift(s + (h << 4), a->half, a->shift);
        if ((first && !(x & a->pool)) || v > *p)
            *p = v;
    }
}

/* checks and the row arguments (tab: room for the tables) */
static bn_status conv_setup(const void *in, size_t side, const int16_t *w, uint8_t shift,
                            uint8_t pool, const int16_t *out, int16_t *tab, conv_args *a)
{
    size_t k, n;
    if (!in || !w || !out)
        return BN_ERR_NULL;
    if (side < 3 || side > BN_MAX_SIDE || shift > 30 || pool > 1 || (pool && side % 2))
        return BN_ERR_SHAPE;
    a->o = (uint16_t)(side - 2);
    a->shift = shift;
    a->pool = pool;
    a->yodd = 0;
    a->half = shift ? 1u << (shift - 1u) : 0u;
    a->base = 0;
#if BN_CONV_FAST
    a->w = tab;
    for (k = 0; k < 9; k++) {        /* tab[16 k + n] = w[k] * n by additions (fits int16) */
        uint32_t acc = 0, wk = (uint32_t)(int32_t)w[k];
        for (n = 0; n < 16; n += 4, tab += 4) {
            tab[0] = (int16_t)(int32_t)acc;
            tab[1] = (int16_t)(int32_t)(acc += wk);
            tab[2] = (int16_t)(int32_t)(acc += wk);
            tab[3] = (int16_t)(int32_t)(acc += wk);
            acc += wk;
        }
    }
#else
    (void)tab; (void)k; (void)n;
    a->w = w;
#endif
    return BN_OK;
}

#if BN_CONV_FAST
#define CONV_TAB 144
#else
#define CONV_TAB 1
#endif

/* rows of one map: after each conv row, the next output row (pool: every other) */
static void conv_rows_step(conv_args *a, int16_t **out)
{
    if (a->pool) {
        a->yodd ^= 1u;
        if (a->yodd)
            return;
    }
    *out += a->o >> a->pool;
}

BN_HOT_AUX bn_status bn_conv3x3_i16(const int16_t *in, size_t side, const int16_t *w,
                                    uint8_t shift, uint8_t pool, int16_t *out)
{
    int16_t tab[CONV_TAB];
    conv_args a;
    const uint16_t *r = (const uint16_t *)(const void *)in;
    size_t y;
    bn_status st = conv_setup(in, side, w, shift, pool, out, tab, &a);
    if (st != BN_OK)
        return st;
    for (y = 0; y < a.o; y++, r += side) {
        conv_row(r, r + side, r + 2 * side, &a, out);
        conv_rows_step(&a, &out);
    }
    return BN_OK;
}

int32_t bn_conv_centre(const int8_t *in, size_t n)
{
    int32_t c = 0;
#if BN_CONV_FAST
    const int8_t *end = in + n;
    for (c = 127; in < end; in++)
        if (*in < c)
            c = *in;
#else
    (void)in; (void)n;
#endif
    return c;
}

/* image row -> 16 bits, centred on c */
static void widen(const int8_t *in, size_t n, int32_t c, uint16_t *row)
{
    const int8_t *end = in + n;
    while (in < end)
        *row++ = (uint16_t)(*in++ - c);
}

/* c * sum(w) by shift and add (no multiplier) */
static uint32_t centre_base(int32_t c, const int16_t *w)
{
    uint32_t m, sw = 0, base = 0;
    size_t k;
    for (k = 0; k < 9; k++)
        sw += (uint32_t)(int32_t)w[k];
    for (m = c < 0 ? 0u - (uint32_t)c : (uint32_t)c; m; m >>= 1, sw <<= 1)
        if (m & 1u)
            base += sw;
    return c < 0 ? 0u - base : base;
}

BN_HOT_AUX bn_status bn_conv3x3_i8c(const int8_t *in, size_t side, const int16_t *w,
                                    uint8_t shift, uint8_t pool, int16_t *out, int32_t c)
{
    int16_t tab[CONV_TAB];
    uint16_t ring[3][BN_MAX_SIDE], *r0 = ring[0], *r1 = ring[1], *r2 = ring[2];
    conv_args a;
    size_t y;
    bn_status st = conv_setup(in, side, w, shift, pool, out, tab, &a);
    if (st != BN_OK)
        return st;
    a.base = centre_base(c, w);
    for (y = 0; y < side; y++, in += side) {      /* rows y - 2, y - 1, y: r0 r1 r2 */
        uint16_t *t = r0;
        r0 = r1;
        r1 = r2;
        r2 = t;
        widen(in, side, c, r2);
        if (y < 2)
            continue;
        conv_row(r0, r1, r2, &a, out);
        conv_rows_step(&a, &out);
    }
    return BN_OK;
}

/* The image is read three rows at a time, widened to 16 bits and centred on its
 * smallest pixel m (fast: background pixels become zero inputs; c * sum(w) is the
 * base of every sum), in a ring of three rows on the stack. */
bn_status bn_conv3x3_i8(const int8_t *in, size_t side, const int16_t *w, uint8_t shift,
                        uint8_t pool, int16_t *out)
{
    return bn_conv3x3_i8c(in, side, w, shift, pool, out,
                          in && side <= BN_MAX_SIDE ? bn_conv_centre(in, side * side) : 0);
}
