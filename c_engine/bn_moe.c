/*
 * bn_moe.c - a mixture of experts of FC networks (bn_moe, emitted by
 * bitnetlib/deploy/moe.py): an optional trunk network, whose output accumulators go
 * through ShiftNorm + ReLU into int8 features; a gate network on those features (or
 * on the input) whose argmax (first max wins) chooses the expert; that one expert
 * network gives the logits. Each piece is an ordinary bn_model run by
 * bn_run_network, so the kernels, layouts and checks are the engine's own.
 * Contract: bitnet.h.
 */
#include "bitnet.h"

#define BN_ALIGN4(n) (((n) + 3u) & ~(size_t)3u)

/* The moe's shapes (see bitnet.h); *sub: the largest scratch of its networks,
 * *feat: the length of the features gate and experts read. */
static bn_status check_moe(const bn_moe *m, size_t *sub, size_t *feat)
{
    size_t e, n, s;
    if (!m || !m->gate || !m->experts)
        return BN_ERR_NULL;
    if (m->magic != BN_MOE_MAGIC)
        return BN_ERR_MODEL;
    if (m->n_experts < 1 || m->gate->n_classes != m->n_experts)
        return BN_ERR_SHAPE;
    *feat = m->trunk ? m->trunk->n_classes : m->gate->input_len;
    *sub = m->trunk ? bn_scratch_bytes(m->trunk) : 1u;
    if (*sub == 0 || (s = bn_scratch_bytes(m->gate)) == 0)
        return BN_ERR_MODEL;
    if (s > *sub)
        *sub = s;
    if (m->gate->input_len != *feat)
        return BN_ERR_SHAPE;
    for (e = 0; e < m->n_experts; e++) {
        const bn_model *x = m->experts[e];
        if (!x)
            return BN_ERR_NULL;
        if ((n = bn_scratch_bytes(x)) == 0)
            return BN_ERR_MODEL;
        if (x->input_len != *feat || x->n_classes != m->experts[0]->n_classes)
            return BN_ERR_SHAPE;
        if (n > *sub)
            *sub = n;
    }
    return BN_OK;
}

/* Scratch: the networks' own (shared: they run one after the other), then the
 * trunk's int32 accumulators, the gate's int32 logits, the int8 features. */
static size_t moe_need(const bn_moe *m, size_t sub, size_t feat)
{
    size_t t = m->trunk ? feat : 0u;
    return BN_ALIGN4(sub) + 4u * t + 4u * m->n_experts + t;
}

size_t bn_moe_scratch_bytes(const bn_moe *m)
{
    size_t sub, feat;
    return check_moe(m, &sub, &feat) == BN_OK ? moe_need(m, sub, feat) : 0u;
}

bn_status bn_run_moe(const bn_moe *m, const int8_t *input, size_t input_len,
                     int32_t *logits, size_t logits_len, uint16_t *pred, uint16_t *expert,
                     void *scratch, size_t scratch_bytes)
{
    size_t sub, feat, t;
    int32_t *tacc, *gate_logits;
    int8_t *features;
    uint16_t unused;
    bn_status st = check_moe(m, &sub, &feat);
    if (st != BN_OK)
        return st;
    if (!input || !logits || !pred || !expert || !scratch)
        return BN_ERR_NULL;
    if (input_len != (m->trunk ? m->trunk->input_len : feat) ||
        logits_len != m->experts[0]->n_classes)
        return BN_ERR_SHAPE;
    if (scratch_bytes < moe_need(m, sub, feat))
        return BN_ERR_SCRATCH;
    t = m->trunk ? feat : 0u;
    tacc = (int32_t *)((uint8_t *)scratch + BN_ALIGN4(sub));  /* aligned: see bitnet.h */
    gate_logits = tacc + t;
    features = (int8_t *)(gate_logits + m->n_experts);
    if (m->trunk) {
        st = bn_run_network(m->trunk, input, input_len, tacc, t, &unused, scratch, sub,
                            NULL, 0);
        if (st == BN_OK)
            st = bn_shiftnorm_relu(tacc, t, features, NULL, NULL);
        if (st != BN_OK)
            return st;
        input = features;
    }
    st = bn_run_network(m->gate, input, feat, gate_logits, m->n_experts, expert, scratch,
                        sub, NULL, 0);
    if (st != BN_OK)
        return st;
    return bn_run_network(m->experts[*expert], input, feat, logits, logits_len, pred,
                          scratch, sub, NULL, 0);
}
