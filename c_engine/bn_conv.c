/*
 * bn_conv.c - the conv kernels: the plain reference (bn_conv3x3_relu, bn_maxpool2x2,
 * the oracle of the tests) and the runner's kernel bn_conv3x3_i8 (conv, ReLU, rounding
 * shift, saturation to BN_MAP_MAX and the 2x2 max-pool in one pass, on the int8 image
 * or an int8 map; the same integers as the reference, tested bit for bit). Contract:
 * bitnet.h.
 *
 * BN_CONV_FAST (default 1; the firmware's baseline builds 0) chooses how the runner's
 * kernels form the products w * x:
 *   1  scatter over product tables (conv_map): each input row is read once; an input
 *      x that is not zero adds w[k] * x to the 9 outputs it reaches, held in a ring
 *      of three rows of uint32 accumulators; a zero input costs one load and one
 *      branch for all 9 taps. w[k] * x comes from tables built by additions once per
 *      call, t[k][n] = w[k] * n over the two 4-bit digits n of x (every input is below
 *      256: a centred image pixel or a map entry; RV32EC has no multiplier, libgcc's
 *      __mulsi3 loops over the bits). A finish
 *      pass turns a completed accumulator row into the map row (ReLU, shift,
 *      saturation, the 2x2 max-pool) and resets it for the row it serves next. The
 *      int8 image is centred on its smallest pixel c, found once per image by the
 *      runner (c * sum(w) is the start of every sum): background pixels are zero
 *      inputs, every other input 1..255; a map (0..BN_MAP_MAX) is read with c = 0. The firmware (-DBN_CONV_ASM=1) runs the
 *      scatter, the finish pass and the table build in RV32EC assembly
 *      (bn_conv_rv32e.S), bit-exact with the C here.
 *   0  plain products (the write-up's C code; __mulsi3 on RV32EC), one output at a
 *      time over three input rows (conv_row) in a ring of three widened rows.
 * Sums are uint32_t (modular), converted back exactly.
 */
#include "bn_conv.h"

#ifndef BN_CONV_FAST
#define BN_CONV_FAST 1
#endif
#if defined(__GNUC__)
#define BN_NOINLINE __attribute__((noinline))
#else
#define BN_NOINLINE
#endif

static uint32_t satmap(uint32_t v)
{
    return v > (uint32_t)BN_MAP_MAX ? (uint32_t)BN_MAP_MAX : v;
}

/* ReLU, rounding shift, saturation of a uint32 holding an int32 sum */
static uint32_t relu_shift(uint32_t s, uint32_t half, unsigned shift)
{
    /* s holds a positive int32 iff bit 31 is clear and s != 0 */
    return (s == 0u || (s & 0x80000000u)) ? 0u : satmap((s + half) >> shift);
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
            out[y * o + x] = (int16_t)relu_shift(s, half, shift);
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

#if !BN_CONV_FAST
/* Plain products (the write-up's C, the baseline firmware). What a conv row needs
 * besides its input rows (RV32E passes six arguments in registers). */
typedef struct {
    const int16_t *w;
    uint32_t base, half;     /* sum of the centred-out inputs' products; rounding */
    uint8_t shift, pool;
    uint8_t yodd;            /* pool: the second conv row of a pooled row */
    uint16_t o;              /* outputs of the row */
} conv_args;

/* checks and the row arguments */
static bn_status conv_setup(const void *in, size_t side, const int16_t *w, uint8_t shift,
                            uint8_t pool, const int8_t *out, conv_args *a)
{
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
    a->w = w;
    return BN_OK;
}

#define TAP(k, r, i) (s += (uint32_t)((int32_t)a->w[k] * (int16_t)(r)[i]))

/* One output row from input rows r0 r1 r2 (widened to 16 bits): output x goes to
 * q[x >> pool], stored by the first of the (up to four) outputs that pool into it
 * and max-ed by the others (outputs are >= 0). */
static BN_HOT_CONV void conv_row(const uint16_t *r0, const uint16_t *r1, const uint16_t *r2,
                                 const conv_args *a, int8_t *q)
{
    const uint16_t *end = r0 + a->o;
    unsigned x = 0, first = a->yodd ? 0u : 1u;
    for (; r0 < end; r0++, r1++, r2++, x++) {
        uint32_t s = a->base;
        int8_t v, *p = q + (x >> a->pool);
        TAP(0, r0, 0); TAP(1, r0, 1); TAP(2, r0, 2);
        TAP(3, r1, 0); TAP(4, r1, 1); TAP(5, r1, 2);
        TAP(6, r2, 0); TAP(7, r2, 1); TAP(8, r2, 2);
        v = (int8_t)relu_shift(s, a->half, a->shift);
        if ((first && !(x & a->pool)) || v > *p)
            *p = v;
    }
}
#endif

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

#if BN_CONV_FAST
/*
 * Fast: scatter. Each input row is read once; a non-zero input x adds w[k] * x to
 * the 9 outputs it reaches, in a ring of three rows of uint32 accumulators (the
 * output rows r, r - 1, r - 2 of input row r); a zero input costs one load and one
 * branch for all 9 taps. The products come from tables built by additions once per
 * call, t[k][n] = w[k] * n for the 4-bit digits n: w[k] * x = t[k][x & 15] +
 * 16 t[k][x >> 4] (x < 256: an image pixel after centring, or a map entry).
 * Accumulator slot X + 2 holds output column X (input column x, tap dx: slot
 * x + 2 - dx; slots 0, 1 and the two after the last output gather the products of
 * outputs that do not exist and are never read).
 */
#define TB(p, k) ((uint32_t)(int32_t)*(const int16_t *)(const void *)((p) + 32 * (k)))
#define SP(k) (TB(lo, k) + (TB(hi, k) << 4))

/* What conv_finish needs (the RV32EC version reads it by offset: keep the order). */
typedef struct {
    uint32_t half, shift;
    uint32_t init;           /* a slot's start for its next output row */
    uint32_t pool, second;   /* pool: pairs max-ed; second: max-ed with q too */
} conv_fin;

/* Input row in .. end (int8, centred on c: 0..255) into the accumulators of output
 * rows r, r - 1, r - 2: p_dy[i + 2 - dx] += w[3 dy + dx] * x_i (p_dy at the row's
 * slot 0). conv_finish: the row's accumulators p .. end (slot 2 on) -> q, each reset
 * to f->init; ReLU, rounding shift, saturation; pool: pairs max-ed, stored (first row
 * of a pair) or max-ed with q (second). */
#if BN_CONV_ASM
void bn_conv_scatter8_rv32e(const int8_t *in, const int8_t *end, const unsigned char *tb,
                            uint32_t *p0, uint32_t *p1, uint32_t *p2, int32_t c);
void bn_conv_finish_rv32e(uint32_t *p, uint32_t *end, int8_t *q, const conv_fin *f);
void bn_conv_tables_rv32e(const int16_t *w, int16_t *tab);
void bn_conv_fill_rv32e(uint32_t *p, uint32_t *end, uint32_t v);
#define conv_tables bn_conv_tables_rv32e
#define conv_fill bn_conv_fill_rv32e
#define conv_scatter8 bn_conv_scatter8_rv32e
#define conv_finish bn_conv_finish_rv32e
#else
/* tab[16 k + n] = w[k] * n by additions (fits int16) */
static void conv_tables(const int16_t *w, int16_t *tab)
{
    size_t k, n;
    for (k = 0; k < 9; k++) {
        uint32_t acc = 0, wk = (uint32_t)(int32_t)w[k];
        for (n = 0; n < 16; n++, acc += wk)
            *tab++ = (int16_t)(int32_t)acc;
    }
}

/* p .. end (an even number of words, > 0) = v */
static void conv_fill(uint32_t *p, uint32_t *end, uint32_t v)
{
    for (; p < end; p += 2)
        p[0] = p[1] = v;
}

static BN_HOT_CONV BN_NOINLINE void conv_scatter8(const int8_t *in, const int8_t *end,
                                                  const unsigned char *tb, uint32_t *p0,
                                                  uint32_t *p1, uint32_t *p2, int32_t c)
{
    for (; in < end; in++, p0++, p1++, p2++) {
        uint32_t u = (uint32_t)(*in - c) & 255u;
        const unsigned char *lo = tb + ((u << 1) & 30u), *hi = tb + ((u >> 3) & 30u);
        if (!u)
            continue;
        p0[2] += SP(0); p0[1] += SP(1); p0[0] += SP(2);
        p1[2] += SP(3); p1[1] += SP(4); p1[0] += SP(5);
        p2[2] += SP(6); p2[1] += SP(7); p2[0] += SP(8);
    }
}

/* An accumulator -> map entry: ReLU, rounding shift, saturation. */
static uint32_t finish1(uint32_t s, const conv_fin *f)
{
    return (int32_t)s <= 0 ? 0 : satmap((s + f->half) >> f->shift);
}

static BN_NOINLINE void conv_finish(uint32_t *p, uint32_t *end, int8_t *q, const conv_fin *f)
{
    for (; p < end; p += 1 + f->pool, q++) {
        uint32_t v = finish1(p[0], f);
        p[0] = f->init;
        if (f->pool) {
            uint32_t v1 = finish1(p[1], f);
            p[1] = f->init;
            if (v1 > v)
                v = v1;
            if (f->second && (uint32_t)*q > v)
                v = (uint32_t)*q;
        }
        *q = (int8_t)v;
    }
}
#endif

/* A whole map: rows of in (int8, centred on c). The slots of output rows 0..2 are set
 * before their first input row (rows 0 and 1 also feed rows -2 and -1, whose slots
 * are 1 and 2), each whole row (+ 1 slot for an odd side: the next row's slot 0, or
 * past the ring's end, which BN_CONV_RING rounds up); later ones by conv_finish.
 * Arguments checked by the caller (the runner's check_model, or conv_i8): always
 * BN_OK. The runner calls it directly (no wrapper frame: SRAM). */
bn_status bn_conv_map(const int8_t *in, int32_t c, size_t side, const int16_t *w,
                      uint8_t shift, uint8_t pool, int8_t *out, uint32_t *acc)
{
    int16_t tab[144];
    conv_fin f;
    size_t r, o = side - 2, wd = side + 2;
    uint32_t *s0 = acc, *s1 = acc + 2 * wd, *s2 = acc + wd, *p;
    conv_tables(w, tab);
    f.half = shift ? 1u << (shift - 1u) : 0u;
    f.shift = shift;
    f.init = centre_base(c, w);
    f.pool = pool;
    f.second = 0;
    for (r = 0; r < side; r++, in += side) {    /* s0 s1 s2: rows r, r - 1, r - 2 */
        if (r < 3)
            conv_fill(s0, s0 + ((wd + 1) & ~(size_t)1), f.init);
        conv_scatter8(in, in + side, (const unsigned char *)tab, s0, s1, s2, c);
        if (r >= 2) {                           /* output row r - 2 */
            conv_finish(s2 + 2, s2 + 2 + o, out, &f);
            if (!pool || f.second)
                out += o >> pool;
            f.second ^= pool;
        }
        p = s2;
        s2 = s1;
        s1 = s0;
        s0 = p;
    }
    return BN_OK;
}

static bn_status conv_i8(const int8_t *in, size_t side, const int16_t *w, uint8_t shift,
                         uint8_t pool, int8_t *out, int32_t c)
{
    uint32_t ring[BN_CONV_RING(BN_MAX_SIDE)];
    if (!in || !w || !out)
        return BN_ERR_NULL;
    if (side < 3 || side > BN_MAX_SIDE || shift > 30 || pool > 1 || (pool && side % 2))
        return BN_ERR_SHAPE;
    return bn_conv_map(in, c, side, w, shift, pool, out, ring);
}
#else
/* Plain products (the write-up's C, the baseline firmware): a conv row over three
 * input rows at a time, in a ring of three widened rows on the stack. */
/* int8 row -> 16 bits, centred on c */
static void widen(const int8_t *in, size_t n, int32_t c, uint16_t *row)
{
    const int8_t *end = in + n;
    while (in < end)
        *row++ = (uint16_t)(*in++ - c);
}

static void conv_rows_step(conv_args *a, int8_t **out)
{
    if (a->pool) {
        a->yodd ^= 1u;
        if (a->yodd)
            return;
    }
    *out += a->o >> a->pool;
}

static bn_status conv_i8(const int8_t *in, size_t side, const int16_t *w, uint8_t shift,
                         uint8_t pool, int8_t *out, int32_t c)
{
    uint16_t ring[3][BN_MAX_SIDE], *r0 = ring[0], *r1 = ring[1], *r2 = ring[2];
    conv_args a;
    size_t y;
    bn_status st = conv_setup(in, side, w, shift, pool, out, &a);
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

bn_status bn_conv_map(const int8_t *in, int32_t c, size_t side, const int16_t *w,
                      uint8_t shift, uint8_t pool, int8_t *out, uint32_t *ring)
{
    (void)ring;
    return conv_i8(in, side, w, shift, pool, out, c);
}
#endif

/* The input centred on its smallest entry (fast: background pixels become zero
 * inputs; c * sum(w) is the start of every sum). */
bn_status bn_conv3x3_i8(const int8_t *in, size_t side, const int16_t *w, uint8_t shift,
                        uint8_t pool, int8_t *out)
{
    return conv_i8(in, side, w, shift, pool, out,
                   in && side <= BN_MAX_SIDE ? bn_conv_centre(in, side * side) : 0);
}
