/*
 * bn_network.c - conv 3x3 / depthwise / max-pool kernels and the network runner
 * driven by a bn_model (emitted by `bitnet export`). Contract: bitnet.h.
 */
#include "bitnet.h"

static int16_t sat16(uint32_t v)
{
    return (int16_t)(v > (uint32_t)BN_ACT16_MAX ? (uint32_t)BN_ACT16_MAX : v);
}

/* The 3x3 valid convolution body. BN_CONV_FAST (default 1; the baseline firmware
 * builds 0): products by shift-and-add (RV32EC has no multiplier, and libgcc's
 * __mulsi3 loops over all 32 bits of a negative weight), inputs equal to the centre
 * c skipped, c * sum(w) added once: c is 0 for ReLU maps and the background (the
 * first pixel) for the image, so most of the image's pixels cost nothing. The
 * same integer sum either way. 0: plain products (the write-up's C code). */
#ifndef BN_CONV_FAST
#define BN_CONV_FAST 1
#endif

#if BN_CONV_FAST
/* r = w * x for m = |w| <= 128 (every conv weight type): one step per bit of m;
 * sg = 0 or ~0 applies the sign of w. Modular, exact. A macro: -Os does not inline
 * a function with nine call sites, and the call would cost as much as the loop. */
#define MUL_W(r, m, sg, x)                                                              \
    do {                                                                                \
        uint32_t m_ = (m), x_ = (x), r_ = 0;                                            \
        do {                                                                            \
            if (m_ & 1u)                                                                \
                r_ += x_;                                                               \
            x_ <<= 1;                                                                   \
        } while (m_ >>= 1);                                                             \
        (r) = (r_ ^ (sg)) - (sg);                                                       \
    } while (0)

/* tap k of the window at row pointers r0 r1 r2, column x: skipped when it equals c */
#define CONV_TAP(s, k, r, x)                                                            \
    do {                                                                                \
        int32_t v_ = (r)[x] - c;                                                        \
        if (v_) {                                                                       \
            uint32_t p_;                                                                \
            MUL_W(p_, aw[k], sg[k], (uint32_t)v_);                                      \
            (s) += p_;                                                                  \
        }                                                                               \
    } while (0)
/* row pointers instead of (y + dy) * side: a multiply is a libgcc call here */
#define CONV3X3_BODY(in, side, w, shift, out, centre)                                   \
    do {                                                                                \
        size_t y, x, k, o = (side) - 2;                                                 \
        uint32_t half = (shift) ? (1u << ((shift) - 1u)) : 0u, aw[9], sg[9], base = 0;  \
        int32_t c = (centre);                                                           \
        int16_t *q = (out);                                                             \
        for (k = 0; k < 9; k++) {                                                       \
            sg[k] = (w)[k] < 0 ? 0xFFFFFFFFu : 0u;                                      \
            aw[k] = (w)[k] < 0 ? 0u - (uint32_t)(int32_t)(w)[k] : (uint32_t)(w)[k];      \
            if (c) {                                                                    \
                uint32_t p_;                                                            \
                MUL_W(p_, aw[k], sg[k], (uint32_t)c);                                   \
                base += p_;                                                             \
            }                                                                           \
        }                                                                               \
        const_row r0 = (in);                                                            \
        for (y = 0; y < o; y++, r0 += (side)) {                                         \
            const_row r1 = r0 + (side), r2 = r1 + (side);                               \
            for (x = 0; x < o; x++) {                                                   \
                uint32_t s = base;                                                      \
                CONV_TAP(s, 0, r0, x); CONV_TAP(s, 1, r0, x + 1); CONV_TAP(s, 2, r0, x + 2); \
                CONV_TAP(s, 3, r1, x); CONV_TAP(s, 4, r1, x + 1); CONV_TAP(s, 5, r1, x + 2); \
                CONV_TAP(s, 6, r2, x); CONV_TAP(s, 7, r2, x + 1); CONV_TAP(s, 8, r2, x + 2); \
                /* s holds a positive int32 iff bit 31 is clear and s != 0 */           \
                *q++ = (s == 0u || (s & 0x80000000u)) ? 0 : sat16((s + half) >> (shift)); \
            }                                                                           \
        }                                                                               \
    } while (0)
#else
#define CONV_TAP(s, k, r, x) ((s) += (uint32_t)((int32_t)(w)[k] * (r)[x]))
#define CONV3X3_BODY(in, side, w, shift, out, centre)                                   \
    do {                                                                                \
        size_t y, x, o = (side) - 2;                                                    \
        uint32_t half = (shift) ? (1u << ((shift) - 1u)) : 0u;                          \
        int16_t *q = (out);                                                             \
        const_row r0 = (in);                                                            \
        for (y = 0; y < o; y++, r0 += (side)) {                                         \
            const_row r1 = r0 + (side), r2 = r1 + (side);                               \
            for (x = 0; x < o; x++) {                                                   \
                uint32_t s = 0;                                                         \
                CONV_TAP(s, 0, r0, x); CONV_TAP(s, 1, r0, x + 1); CONV_TAP(s, 2, r0, x + 2); \
                CONV_TAP(s, 3, r1, x); CONV_TAP(s, 4, r1, x + 1); CONV_TAP(s, 5, r1, x + 2); \
                CONV_TAP(s, 6, r2, x); CONV_TAP(s, 7, r2, x + 1); CONV_TAP(s, 8, r2, x + 2); \
                /* s holds a positive int32 iff bit 31 is clear and s != 0 */           \
                *q++ = (s == 0u || (s & 0x80000000u)) ? 0 : sat16((s + half) >> (shift)); \
            }                                                                           \
        }                                                                               \
    } while (0)
#endif

bn_status bn_conv3x3_relu(const int16_t *in, size_t side, const int16_t *w, uint8_t shift,
                          int16_t *out)
{
    if (!in || !w || !out)
        return BN_ERR_NULL;
    if (side < 3 || shift > 30)
        return BN_ERR_SHAPE;
    {
        typedef const int16_t *const_row;
        CONV3X3_BODY(in, side, w, shift, out, 0);
    }
    return BN_OK;
}

#if BN_CONV
static void conv3x3_relu_i8(const int8_t *in, size_t side, const int16_t *w, uint8_t shift,
                            int16_t *out)
{
    typedef const int8_t *const_row;
    CONV3X3_BODY(in, side, w, shift, out, in[0]);
}
#endif

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

/* What the runner needs to know about a model, found while validating it (uint16_t:
 * it lives in the runner's stack frame, and every count fits; check_* enforce it). */
typedef struct {
    uint16_t n_conv;    /* conv layers at the front */
    uint16_t side0;     /* input side of the first conv layer */
    uint16_t features;  /* inputs of the first FC layer */
    uint16_t max_units; /* largest FC in/out or conv feature count */
    uint16_t trace_len;
    uint16_t map_a;     /* int16 entries of the two conv map buffers (ping-pong) */
    uint16_t map_b;
    uint16_t n_maps;    /* maps placed so far (check_convs) */
} net_info;

#define NET_INFO_INIT {0, 0, 0, 0, 0, 0, 0, 0}

static bn_status check_layer_words(const bn_layer *l, size_t row_len)
{
    if (bn_per_word(l->wtype) == 0)
        return BN_ERR_WTYPE;
    if (!l->weights)
        return BN_ERR_NULL;
    return l->words_per_row == bn_row_words(l->wtype, row_len) ? BN_OK : BN_ERR_SHAPE;
}

/* Conv maps of one channel alternate between buffer A and B: the first conv output
 * (the image itself is read in place) goes to A, the next map to B, and so on. */
static void grow_map(net_info *ni, size_t n)
{
    uint16_t *buf = ni->n_maps++ % 2 ? &ni->map_b : &ni->map_a;
    if (n > *buf)
        *buf = (uint16_t)n;       /* n <= BN_MAX_SIDE^2 */
}

static bn_status check_convs(const bn_model *m, net_info *ni)
{
    size_t i, side = 0, ch = 0;
    bn_status st;
    for (i = 0; i < m->n_layers && m->layers[i].kind != BN_LAYER_FC; i++) {
        const bn_layer *l = &m->layers[i];
        if (!BN_CONV)
            return BN_ERR_LAYER;
        if (l->kind != (i ? BN_LAYER_DW3X3 : BN_LAYER_CONV3X3))
            return BN_ERR_LAYER;
        if (i == 0) {
            side = l->in;
            ni->side0 = l->in;
            ch = l->out;
            if (side * side != m->input_len || side > BN_MAX_SIDE)
                return BN_ERR_SHAPE;
        }
        if ((st = check_layer_words(l, 9)) != BN_OK)
            return st;
        if (l->in != side || l->out != ch || ch == 0 || side < 3 || l->shift > 30)
            return BN_ERR_SHAPE;
        side -= 2;
        grow_map(ni, side * side);
        if (l->pool) {
            if (side % 2 || (side /= 2) == 0)
                return BN_ERR_SHAPE;
            grow_map(ni, side * side);
        }
    }
    if (i && ch * side * side > 0xFFFFu)
        return BN_ERR_SHAPE;
    ni->n_conv = (uint16_t)i;
    ni->features = (uint16_t)(i ? ch * side * side : m->input_len);
    ni->max_units = i ? ni->features : 0;   /* FC input is read in place */
    ni->trace_len = i ? ni->features : 0;
    return BN_OK;
}

static bn_status check_model(const bn_model *m, net_info *ni)
{
    size_t i, width;
    bn_status st;
    if (!m || !m->layers)
        return BN_ERR_NULL;
    if (m->magic != BN_MAGIC || m->version != BN_VERSION)
        return BN_ERR_MODEL;
    if (m->n_layers == 0)
        return BN_ERR_LAYER;
    if ((st = check_convs(m, ni)) != BN_OK)
        return st;
    if (ni->n_conv == m->n_layers)
        return BN_ERR_LAYER;    /* must end in an FC layer */
    width = ni->features;
    for (i = ni->n_conv; i < m->n_layers; i++) {
        const bn_layer *l = &m->layers[i];
        if (l->kind != BN_LAYER_FC || l->layout > BN_LAYOUT_COLS ||
            !((BN_LAYOUTS >> l->layout) & 1u) ||
            (l->wsum && (l->layout != BN_LAYOUT_COLS || i != ni->n_conv)))
            return BN_ERR_LAYER;
        if ((st = check_layer_words(l, l->layout == BN_LAYOUT_COLS ? l->out : l->in)) != BN_OK)
            return st;
        if (l->in != width || l->out == 0)
            return BN_ERR_SHAPE;
        width = l->out;
        if (ni->trace_len + width > 0xFFFFu)
            return BN_ERR_SHAPE;
        ni->trace_len = (uint16_t)(ni->trace_len + width);
        if (width > ni->max_units)
            ni->max_units = (uint16_t)width;
    }
    return width == m->n_classes ? BN_OK : BN_ERR_SHAPE;
}

/* scratch layout: int32 acc[max_units] | int16 map A | int16 map B | int8 act[max_units];
 * max_units: the largest FC output (and the conv feature count of a CNN). One
 * activation buffer is enough: a layer has read all of it into acc before its
 * ShiftNorm overwrites it with the next layer's input. */
static size_t scratch_need(const net_info *ni)
{
    return ni->max_units * 4 + (ni->map_a + ni->map_b) * 2 + ni->max_units;
}

size_t bn_scratch_bytes(const bn_model *m)
{
    net_info ni = NET_INFO_INIT;
    return check_model(m, &ni) == BN_OK ? scratch_need(&ni) : 0;
}

size_t bn_trace_len(const bn_model *m)
{
    net_info ni = NET_INFO_INIT;
    return check_model(m, &ni) == BN_OK ? ni.trace_len : 0;
}

#if BN_CONV
/* One channel through all conv layers (maps in A and B); its feature map lands in
 * feat. */
static bn_status conv_channel(const bn_model *m, const net_info *ni, size_t c,
                              const int8_t *image, int16_t *map_a, int16_t *map_b,
                              int32_t *feat)
{
    size_t side = ni->side0, i;
    const int16_t *cur = NULL;
    int16_t *dst = map_a;
    bn_status st;
    for (i = 0; i < ni->n_conv; i++) {
        const bn_layer *l = &m->layers[i];
        int16_t w[20];
        st = bn_unpack_row(l->wtype, l->weights + c * l->words_per_row, l->words_per_row, 9, w);
        if (st != BN_OK)
            return st;
        if (i == 0)
            conv3x3_relu_i8(image, side, w, l->shift, dst);
        else if ((st = bn_conv3x3_relu(cur, side, w, l->shift, dst)) != BN_OK)
            return st;
        cur = dst;
        dst = dst == map_a ? map_b : map_a;
        side -= 2;
        if (l->pool) {
            if ((st = bn_maxpool2x2(cur, side, dst)) != BN_OK)
                return st;
            cur = dst;
            dst = dst == map_a ? map_b : map_a;
            side /= 2;
        }
    }
    for (i = 0; i < side * side; i++)
        feat[c * side * side + i] = cur[i];
    return BN_OK;
}

/* The conv prefix: image -> acc[features] (int32, from int16 maps). */
static bn_status run_convs(const bn_model *m, const net_info *ni, const int8_t *input,
                           int16_t *map_a, int16_t *map_b, int32_t *acc)
{
    size_t c;
    bn_status st;
    for (c = 0; c < m->layers[0].out; c++)
        if ((st = conv_channel(m, ni, c, input, map_a, map_b, acc)) != BN_OK)
            return st;
    return BN_OK;
}
#endif

static void copy_trace(int32_t *trace, size_t *pos, const int32_t *v, size_t n)
{
    size_t i;
    if (trace)
        for (i = 0; i < n; i++)
            trace[(*pos)++] = v[i];
}

static bn_status run_fcs(const bn_model *m, const net_info *ni, const int8_t *act,
                         int32_t *acc, int8_t *act_buf, int32_t *logits, uint16_t *pred,
                         int32_t *trace, size_t *tpos)
{
    size_t i, k;
    bn_status st;
    for (i = ni->n_conv; i < m->n_layers; i++) {
        const bn_layer *l = &m->layers[i];
#if BN_LAYOUTS & 2u
        if (l->layout == BN_LAYOUT_COLS)
            st = bn_fc_cols(l->wtype, l->weights, l->words_per_row, act, l->in, l->out,
                            l->wsum, acc);
        else
#endif
#if BN_LAYOUTS & 1u
            st = bn_fc(l->wtype, l->weights, l->words_per_row, act, l->in, l->out, acc);
#else
            st = BN_ERR_LAYER;
#endif
        if (st != BN_OK)
            return st;
        copy_trace(trace, tpos, acc, l->out);
        if (i + 1 == m->n_layers)
            break;
        if ((st = bn_shiftnorm_relu(acc, l->out, act_buf, NULL, NULL)) != BN_OK)
            return st;
        act = act_buf;
    }
    for (k = 0; k < m->n_classes; k++)
        logits[k] = acc[k];
    return bn_shiftnorm_relu(acc, m->n_classes, act_buf, NULL, pred);
}

bn_status bn_run_network(const bn_model *m, const int8_t *input, size_t input_len,
                         int32_t *logits, size_t logits_len, uint16_t *pred,
                         void *scratch, size_t scratch_bytes,
                         int32_t *trace, size_t trace_len)
{
    net_info ni = NET_INFO_INIT;
    int32_t *acc;
    int16_t *map_a, *map_b;
    int8_t *act_buf;
    size_t tpos = 0;
    bn_status st = check_model(m, &ni);
    if (st != BN_OK)
        return st;
    if (!input || !logits || !pred || !scratch)
        return BN_ERR_NULL;
    if (input_len != m->input_len || logits_len != m->n_classes ||
        (trace && trace_len < ni.trace_len))
        return BN_ERR_SHAPE;
    if (scratch_bytes < scratch_need(&ni))
        return BN_ERR_SCRATCH;
    acc = (int32_t *)scratch;   /* caller's buffer: aligned for int32 (documented) */
    map_a = (int16_t *)(acc + ni.max_units);
    map_b = map_a + ni.map_a;
    act_buf = (int8_t *)(map_b + ni.map_b);
#if BN_CONV
    if (ni.n_conv) {
        if ((st = run_convs(m, &ni, input, map_a, map_b, acc)) != BN_OK)
            return st;
        copy_trace(trace, &tpos, acc, ni.features);
        if ((st = bn_shiftnorm_relu(acc, ni.features, act_buf, NULL, NULL)) != BN_OK)
            return st;
        input = act_buf;
    }
#else
    (void)map_a;
    (void)map_b;
#endif
    return run_fcs(m, &ni, input, acc, act_buf, logits, pred, trace, &tpos);
}

bn_status bn_run_batch(const bn_model *m, const int8_t *inputs, size_t n, size_t input_len,
                       uint16_t *preds, int32_t *logits, void *scratch, size_t scratch_bytes)
{
    int32_t tmp[64];
    size_t i;
    bn_status st;
    if (!m || !inputs || !preds)
        return BN_ERR_NULL;
    if (!logits && m->n_classes > 64)   /* logits land in tmp */
        return BN_ERR_SHAPE;
    for (i = 0; i < n; i++) {
        int32_t *lg = logits ? logits + i * m->n_classes : tmp;
        st = bn_run_network(m, inputs + i * input_len, input_len, lg, m->n_classes,
                            preds + i, scratch, scratch_bytes, NULL, 0);
        if (st != BN_OK)
            return st;
    }
    return BN_OK;
}
