/*
 * bn_moe.c - a mixture of experts of FC networks (bn_moe, emitted by
 * bitnetlib/deploy/moe.py): an optional trunk network, whose output accumulators go
 * through ShiftNorm + ReLU into int8 features; a gate network on those features (or
 * on the input) whose argmax (first max wins) chooses the expert; that one expert
 * network gives the logits. Each piece is an ordinary bn_model run by
 * bn_run_network, so the kernels, layouts and checks are the engine's own.
 *
 * Validation is split by cost: bn_moe_scratch_bytes (called once, to size the
 * buffer) validates every network in full; bn_run_moe checks only how the networks
 * fit together (shapes, pointers: a loop over the experts) and leaves each network's
 * own checks to bn_run_network, which runs them for the networks it runs, so that a
 * round does not validate the experts it does not run. Contract: bitnet.h.
 */
#include "bitnet.h"

#define BN_ALIGN4(n) (((n) + 3u) & ~(size_t)3u)

/* How the networks fit together; *feat: the length of the features gate and experts
 * read. */
static bn_status check_moe(const bn_moe *m, size_t *feat)
{
    size_t e;
    if (!m || !m->gate || !m->experts)
        return BN_ERR_NULL;
    if (m->magic != BN_MOE_MAGIC)
        return BN_ERR_MODEL;
    if (m->n_experts < 1 || m->gate->n_classes != m->n_experts)
        return BN_ERR_SHAPE;
    *feat = m->trunk ? m->trunk->n_classes : m->gate->input_len;
    if (m->gate->input_len != *feat)
        return BN_ERR_SHAPE;
    for (e = 0; e < m->n_experts; e++) {
        if (!m->experts[e])
            return BN_ERR_NULL;
        if (m->experts[e]->input_len != *feat ||
            m->experts[e]->n_classes != m->experts[0]->n_classes)
            return BN_ERR_SHAPE;
    }
    return BN_OK;
}

/* Scratch: first the trunk's int32 accumulators, the gate's int32 logits and the
 * int8 features, then (int32-aligned) the networks' own scratch, shared: they run
 * one after the other. */
static size_t own_bytes(const bn_moe *m, size_t feat)
{
    size_t t = m->trunk ? feat : 0u;
    return BN_ALIGN4(4u * t + 4u * m->n_experts + t);
}

size_t bn_moe_scratch_bytes(const bn_moe *m)
{
    size_t feat, sub = 0, n, e;
    if (check_moe(m, &feat) != BN_OK)
        return 0;
    for (e = 0; e <= m->n_experts; e++) {       /* e = n_experts: the gate */
        n = bn_scratch_bytes(e < m->n_experts ? m->experts[e] : m->gate);
        if (n == 0)
            return 0;
        sub = n > sub ? n : sub;
    }
    if (m->trunk) {
        if ((n = bn_scratch_bytes(m->trunk)) == 0)
            return 0;
        sub = n > sub ? n : sub;
    }
    return own_bytes(m, feat) + sub;
}

bn_status bn_run_moe(const bn_moe *m, const int8_t *input, size_t input_len,
                     int32_t *logits, size_t logits_len, uint16_t *pred, uint16_t *expert,
                     void *scratch, size_t scratch_bytes)
{
    size_t feat, t, own, sub;
    int32_t *tacc, *gate_logits;
    int8_t *features;
    void *net_scratch;
    uint16_t unused;
    bn_status st = check_moe(m, &feat);
    if (st != BN_OK)
        return st;
    if (!input || !logits || !pred || !expert || !scratch)
        return BN_ERR_NULL;
    if (input_len != (m->trunk ? m->trunk->input_len : feat) ||
        logits_len != m->experts[0]->n_classes)
        return BN_ERR_SHAPE;
    own = own_bytes(m, feat);
    if (scratch_bytes <= own)
        return BN_ERR_SCRATCH;
    sub = scratch_bytes - own;    /* too little for a network: its BN_ERR_SCRATCH */
    t = m->trunk ? feat : 0u;
    tacc = (int32_t *)scratch;    /* caller's buffer: aligned for int32 (bitnet.h) */
    gate_logits = tacc + t;
    features = (int8_t *)(gate_logits + m->n_experts);
    net_scratch = (uint8_t *)scratch + own;
    if (m->trunk) {
        st = bn_run_network(m->trunk, input, input_len, tacc, t, &unused, net_scratch, sub,
                            NULL, 0);
        if (st == BN_OK)
            st = bn_shiftnorm_relu(tacc, t, features, NULL, NULL);
        if (st != BN_OK)
            return st;
        input = features;
    }
    st = bn_run_network(m->gate, input, feat, gate_logits, m->n_experts, expert,
                        net_scratch, sub, NULL, 0);
    if (st != BN_OK)
        return st;
    return bn_run_network(m->experts[*expert], input, feat, logits, logits_len, pred,
                          net_scratch, sub, NULL, 0);
}
