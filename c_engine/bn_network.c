/*
 * bn_network.c - model validation and the network runner driven by a bn_model
 * (emitted by `bitnet export`); the conv kernels are in bn_conv.c. Contract: bitnet.h.
 */
#include "bn_conv.h"

#ifndef BN_ROWS_FAST
#define BN_ROWS_FAST 0    /* 1 (fast firmware): Binary rows by bn_kernels_fast.c */
#endif
#if BN_ROWS_FAST && BN_HAS_FC_WTYPE(1)
bn_status bn_fc_rows_binary_fast(const uint32_t *w, size_t words_per_row, const int8_t *act,
                                 size_t n_in, size_t n_out, int32_t *acc);
#endif

/* What the runner needs to know about a model, found while validating it (uint16_t:
 * it lives in the runner's stack frame, and every count fits; check_* enforce it). */
typedef struct {
    uint16_t n_conv;    /* conv layers at the front */
    uint16_t side0;     /* input side of the first conv layer */
    uint16_t features;  /* inputs of the first FC layer */
    uint16_t fc_max;    /* largest FC output */
    uint16_t trace_len;
    uint16_t map_a;     /* int8 entries (bytes) of the two conv map buffers (ping-pong) */
    uint16_t map_b;
    uint16_t per_channel; /* conv features of one channel */
    uint16_t act_in;    /* bytes of Y for the first FC layer's limited input (bn_act_max
                           < 127: a copy of the input it cannot change in place), or 0 */
} net_info;

#define NET_INFO_INIT {0, 0, 0, 0, 0, 0, 0, 0, 0}

/* BN_TRUST_MODEL=1 (the fast firmware, where flash is short): the model checks below
 * only measure the model (net_info), they return no errors. The firmware's model is
 * a compile-time constant that the host engine has validated with these same checks
 * before the build (bitnetlib/deploy/firmware.py: bn_scratch_bytes); default 0. */
#ifndef BN_TRUST_MODEL
#define BN_TRUST_MODEL 0
#endif
#if BN_TRUST_MODEL
#define FAIL_IF(cond, err) ((void)0)
#else
#define FAIL_IF(cond, err) do { if (cond) return (err); } while (0)
#endif

static bn_status check_layer_words(const bn_layer *l, size_t row_len)
{
    FAIL_IF(bn_per_word(l->wtype) == 0, BN_ERR_WTYPE);
    FAIL_IF(!l->weights, BN_ERR_NULL);
    FAIL_IF(l->words_per_row != bn_row_words(l->wtype, row_len), BN_ERR_SHAPE);
    (void)l;
    (void)row_len;
    return BN_OK;
}

/* A conv layer's weights: rows (9 per channel, each channel padded to whole words) or
 * flat (all out x 9 weights as one row; not Ternary). */
static bn_status check_conv_words(const bn_layer *l)
{
    FAIL_IF(l->wtype >= 16u || !BN_CONV_HAS_WTYPE(l->wtype), BN_ERR_WTYPE);
    FAIL_IF(l->wsum || (l->layout != BN_LAYOUT_ROWS && l->layout != BN_LAYOUT_FLAT) ||
            (l->layout == BN_LAYOUT_FLAT && l->wtype == BN_W_TERNARY), BN_ERR_LAYER);
    return check_layer_words(l, l->layout == BN_LAYOUT_FLAT ? 9u * l->out : 9u);
}

/* A channel's conv maps alternate between buffer A (layers 0, 2, ...) and B (1, 3,
 * ...); the first layer reads the image in place, the last writes the channel's
 * features. Pooling is fused into the conv (bn_conv3x3_i8): a map is stored
 * pooled. */
static bn_status check_convs(const bn_model *m, net_info *ni)
{
    size_t i, side = 0, ch = 0;
    bn_status st;
    for (i = 0; i < m->n_layers && m->layers[i].kind != BN_LAYER_FC; i++) {
        const bn_layer *l = &m->layers[i];
        FAIL_IF(!BN_CONV, BN_ERR_LAYER);
        FAIL_IF(l->kind != (i ? BN_LAYER_DW3X3 : BN_LAYER_CONV3X3), BN_ERR_LAYER);
        if (i == 0) {
            side = l->in;
            ni->side0 = l->in;
            ch = l->out;
            FAIL_IF(side * side != m->input_len || side > BN_MAX_SIDE, BN_ERR_SHAPE);
        }
        if ((st = check_conv_words(l)) != BN_OK)
            return st;
        FAIL_IF(l->in != side || l->out != ch || ch == 0 || side < 3 || l->shift > 30 ||
                l->pool > 1 || (l->pool && side % 2), BN_ERR_SHAPE);
        side = (side - 2) >> l->pool;
        FAIL_IF(side == 0, BN_ERR_SHAPE);
        if (i + 1 < m->n_layers && m->layers[i + 1].kind != BN_LAYER_FC) {
            uint16_t *buf = i & 1u ? &ni->map_b : &ni->map_a;
            if (side * side > *buf)
                *buf = (uint16_t)(side * side);     /* <= BN_MAX_SIDE^2 */
        }
    }
    FAIL_IF(i && ch * side * side > 0xFFFFu, BN_ERR_SHAPE);
    ni->n_conv = (uint16_t)i;
    ni->per_channel = (uint16_t)(side * side);
    ni->features = (uint16_t)(i ? ch * side * side : m->input_len);
    ni->trace_len = i ? ni->features : 0;
    return BN_OK;
}

static bn_status check_model(const bn_model *m, net_info *ni)
{
    size_t i, width;
    bn_status st;
    FAIL_IF(!m || !m->layers, BN_ERR_NULL);
    FAIL_IF(m->magic != BN_MAGIC || m->version != BN_VERSION, BN_ERR_MODEL);
    FAIL_IF(m->n_layers == 0, BN_ERR_LAYER);
    if ((st = check_convs(m, ni)) != BN_OK)
        return st;
    FAIL_IF(ni->n_conv == m->n_layers, BN_ERR_LAYER);    /* must end in an FC layer */
    width = ni->features;
    for (i = ni->n_conv; i < m->n_layers; i++) {
        const bn_layer *l = &m->layers[i];
        FAIL_IF(l->kind != BN_LAYER_FC || l->layout > BN_LAYOUT_COLS ||
                !((BN_LAYOUTS >> l->layout) & 1u) ||
                (l->wsum && (l->layout != BN_LAYOUT_COLS || i != ni->n_conv)), BN_ERR_LAYER);
        if ((st = check_layer_words(l, l->layout == BN_LAYOUT_COLS ? l->out : l->in)) != BN_OK)
            return st;
        FAIL_IF(l->in != width || l->out == 0, BN_ERR_SHAPE);
        if (i == ni->n_conv && bn_act_max(l->wtype) < 127u)
            ni->act_in = l->in;
        width = l->out;
        FAIL_IF(ni->trace_len + width > 0xFFFFu, BN_ERR_SHAPE);
        ni->trace_len = (uint16_t)(ni->trace_len + width);
        if (width > ni->fc_max)
            ni->fc_max = (uint16_t)width;
    }
    FAIL_IF(width != m->n_classes, BN_ERR_SHAPE);
    return BN_OK;
}

/* Scratch layout, two regions:
 *   X  int32 acc[fc_max] (FC layers); for a CNN, while the conv layers run, the int8
 *      maps A and B in the same bytes (they are dead before the first FC layer);
 *   Y  int8 act[] (a layer reads all of it into acc before its ShiftNorm refills it);
 *      for a CNN, first the int8 conv features (the first FC layer's input).
 * An FC net reads its input in place: X 4 * fc_max, Y fc_max bytes (Y at least the
 * input when the first FC layer limits its activations: act_in). */
static size_t region_x(const net_info *ni)
{
    size_t acc = (size_t)ni->fc_max * 4u, maps = (size_t)ni->map_a + ni->map_b;
    return (acc > maps ? acc : (maps + 3u) & ~(size_t)3u);
}

static size_t scratch_need(const net_info *ni)
{
    size_t y = ni->n_conv ? (size_t)ni->features : 0u;
    if (ni->act_in > y)
        y = ni->act_in;
    return region_x(ni) + (y > ni->fc_max ? y : ni->fc_max);
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
/* The 9 weights of channel c (first = 9 c: no multiplication, RV32EC has none); flat
 * 8-bit weights read directly (fields f -> f - 128, the first in a word's top byte:
 * on a little-endian machine, byte k ^ 3 of the array). */
static bn_status conv_weights(const bn_layer *l, size_t c, size_t first, int16_t *w)
{
#if BN_CONV_HAS_WTYPE(6)
    if (l->layout == BN_LAYOUT_FLAT && l->wtype == BN_W_8BIT) {   /* size: check_model */
        size_t k;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        const uint8_t *b = (const uint8_t *)(const void *)l->weights;
        for (k = first; k < first + 9u; k++)
            *w++ = (int16_t)((int32_t)b[k ^ 3u] - 128);
#else
        for (k = first; k < first + 9u; k++)
            *w++ = (int16_t)((int32_t)((l->weights[k >> 2] >> (24u - 8u * (k & 3u))) & 255u)
                             - 128);
#endif
        return BN_OK;
    }
#endif
#if BN_CONV_WTYPES & ~0x40u
    if (l->layout == BN_LAYOUT_FLAT)
        return bn_unpack_flat(l->wtype, l->weights, l->words_per_row, first, 9, w);
    return bn_unpack_row(l->wtype, l->weights + c * l->words_per_row, l->words_per_row, 9, w);
#else
    (void)c;
    return l->layout == BN_LAYOUT_FLAT ? BN_ERR_WTYPE : BN_ERR_LAYER;  /* check_convs */
#endif
}

/* One channel through all conv layers (maps in A and B); its features land in feat.
 * centre: the image's (bn_conv_centre), first: 9 c. */
static bn_status conv_channel(const bn_model *m, const net_info *ni, size_t c, size_t first,
                              const int8_t *image, int32_t centre, uint32_t *ring,
                              int8_t *map_a, int8_t *map_b, int8_t *feat)
{
    size_t side = ni->side0, i;
    const int8_t *cur = image;
    bn_status st;
    for (i = 0; i < ni->n_conv; i++, centre = 0) {      /* a map's centre: 0 */
        const bn_layer *l = &m->layers[i];
        int16_t w[9];
        int8_t *dst = i + 1 == ni->n_conv ? feat : i & 1u ? map_b : map_a;
        st = conv_weights(l, c, first, w);
        if (st == BN_OK)
            st = bn_conv_map(cur, centre, side, w, l->shift, l->pool, dst, ring);
        if (st != BN_OK)
            return st;
        cur = dst;
        side = (side - 2) >> l->pool;
    }
    return BN_OK;
}

/* The conv prefix: image -> int8 features, channel after channel. The fast conv
 * kernels' accumulator rows are on the stack here, sized by the image (a VLA; none
 * for the plain kernels), so that conv_map has no VLA of its own and the scratch
 * (bn_scratch_bytes) is the same for every kernel choice. */
static bn_status run_convs(const bn_model *m, const net_info *ni, const int8_t *input,
                           int8_t *map_a, int8_t *map_b, int8_t *feat)
{
#if !defined(BN_CONV_FAST) || BN_CONV_FAST
    uint32_t ring[BN_CONV_RING(ni->side0)];
#else
    uint32_t *ring = NULL;
#endif
    size_t c, first = 0;
    int32_t centre = bn_conv_centre(input, m->input_len);
    bn_status st;
    for (c = 0; c < m->layers[0].out; c++, first += 9u, feat += ni->per_channel)
        if ((st = conv_channel(m, ni, c, first, input, centre, ring, map_a, map_b, feat))
            != BN_OK)
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
#if BN_HAS_FC_WTYPE(9)                  /* only 4p6 limits (a build without it: less flash) */
        uint8_t lim = bn_act_max(l->wtype);
        if (lim < 127u) {               /* ACTIVATION LIMIT (bitnet.h), into Y */
            if ((st = bn_act_limit(act, l->in, lim, act_buf, NULL)) != BN_OK)
                return st;
            act = act_buf;
        }
#endif
#if BN_LAYOUTS & 2u
        if (l->layout == BN_LAYOUT_COLS)
            st = bn_fc_cols(l->wtype, l->weights, l->words_per_row, act, l->in, l->out,
                            l->wsum, acc);
        else
#endif
#if BN_LAYOUTS & 1u
#if BN_ROWS_FAST && BN_HAS_FC_WTYPE(1)
        if (l->wtype == BN_W_BINARY)    /* the fast firmware's rows fall-back */
            st = bn_fc_rows_binary_fast(l->weights, l->words_per_row, act, l->in, l->out, acc);
        else
#endif
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
    act_buf = (int8_t *)scratch + region_x(&ni);
#if BN_CONV
    if (ni.n_conv) {
        if ((st = run_convs(m, &ni, input, (int8_t *)scratch,
                            (int8_t *)scratch + ni.map_a, act_buf)) != BN_OK)
            return st;
        for (; trace && tpos < ni.features; tpos++)   /* the features, 0..BN_MAP_MAX */
            trace[tpos] = act_buf[tpos];
        tpos = ni.features;
        input = act_buf;
    }
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
