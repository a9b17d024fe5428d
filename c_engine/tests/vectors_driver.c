/*
 * vectors_driver.c - runs the engine on reference vectors written by the Python
 * integer model (tests/test_engine.py) and checks every value. Built with
 * -fsanitize=address,undefined -fno-sanitize-recover by the tests.
 *
 * Build: gcc -std=c99 ... -I c_engine [-include model.h -DBN_TEST_MODEL=bn_model_xxxxxxxx]
 *        vectors_driver.c bn_kernels.c bn_network.c
 * Input (whitespace-separated integers, records tagged by a letter):
 *   K wtype n_in n_out wpr  words[n_out*wpr] act[n_in] acc[n_out]     FC kernel
 *   S n  acc[n] out[n] shift argmax                                   ShiftNorm
 *   C side shift  w[9] in[side*side] out[(side-2)^2]                   conv channel
 *   N n  (input[input_len] pred logits[n_classes]) * n                 network
 * Prints "ok <records>" and exits 0, or names the first difference and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bitnet.h"

static FILE *in;

static long long next(void)
{
    long long v;
    if (fscanf(in, "%lld", &v) != 1) {
        fprintf(stderr, "truncated vector file\n");
        exit(2);
    }
    return v;
}

static void *alloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        exit(3);
    return p;
}

static int fail(const char *what, long rec, long i, long long got, long long want)
{
    fprintf(stderr, "record %ld: %s[%ld] = %lld, expected %lld\n", rec, what, i, got, want);
    return 1;
}

static int check_fc(long rec)
{
    uint8_t wtype = (uint8_t)next();
    size_t n_in = (size_t)next(), n_out = (size_t)next(), wpr = (size_t)next(), i;
    uint32_t *w = alloc(n_out * wpr, sizeof *w);
    int8_t *a = alloc(n_in, 1);
    int32_t *acc = alloc(n_out, sizeof *acc);
    int bad = 0, st;
    for (i = 0; i < n_out * wpr; i++) w[i] = (uint32_t)next();
    for (i = 0; i < n_in; i++) a[i] = (int8_t)next();
    st = bn_fc(wtype, w, wpr, a, n_in, n_out, acc);
    if (st != BN_OK)
        bad = fail("status", rec, 0, st, 0);
    for (i = 0; i < n_out; i++) {
        long long want = next();
        if (!bad && acc[i] != want)
            bad = fail("acc", rec, (long)i, acc[i], want);
    }
    free(w); free(a); free(acc);
    return bad;
}

static int check_shiftnorm(long rec)
{
    size_t n = (size_t)next(), i;
    int32_t *acc = alloc(n, sizeof *acc);
    int8_t *out = alloc(n, 1);
    uint8_t shift;
    uint16_t am;
    int bad = 0;
    long long want;
    for (i = 0; i < n; i++) acc[i] = (int32_t)next();
    if (bn_shiftnorm_relu(acc, n, out, &shift, &am) != BN_OK)
        bad = fail("status", rec, 0, 1, 0);
    for (i = 0; i < n; i++) {
        want = next();
        if (!bad && out[i] != want)
            bad = fail("out", rec, (long)i, out[i], want);
    }
    want = next();
    if (!bad && shift != want) bad = fail("shift", rec, 0, shift, want);
    want = next();
    if (!bad && am != want) bad = fail("argmax", rec, 0, am, want);
    free(acc); free(out);
    return bad;
}

static int check_conv(long rec)
{
    size_t side = (size_t)next(), i, o;
    uint8_t shift = (uint8_t)next();
    int16_t w[9], *x, *y;
    int bad = 0;
    o = side - 2;
    x = alloc(side * side, sizeof *x);
    y = alloc(o * o, sizeof *y);
    for (i = 0; i < 9; i++) w[i] = (int16_t)next();
    for (i = 0; i < side * side; i++) x[i] = (int16_t)next();
    if (bn_conv3x3_relu(x, side, w, shift, y) != BN_OK)
        bad = fail("status", rec, 0, 1, 0);
    for (i = 0; i < o * o; i++) {
        long long want = next();
        if (!bad && y[i] != want)
            bad = fail("conv", rec, (long)i, y[i], want);
    }
    free(x); free(y);
    return bad;
}

static int check_network(long rec)
{
#ifdef BN_TEST_MODEL
    const bn_model *m = &BN_TEST_MODEL;
    size_t n = (size_t)next(), k, i, sb = bn_scratch_bytes(m);
    int8_t *x = alloc(m->input_len, 1);
    int32_t *logits = alloc(m->n_classes, sizeof *logits);
    int32_t *scratch = alloc(sb / 4 + 1, sizeof *scratch);
    uint16_t pred;
    int bad = sb == 0;
    for (k = 0; k < n && !bad; k++) {
        for (i = 0; i < m->input_len; i++) x[i] = (int8_t)next();
        if (bn_run_network(m, x, m->input_len, logits, m->n_classes, &pred, scratch, sb,
                           NULL, 0) != BN_OK)
            bad = fail("status", rec, (long)k, 1, 0);
        if (!bad && pred != next())
            bad = fail("pred", rec, (long)k, pred, -1);
        for (i = 0; i < m->n_classes; i++) {
            long long want = next();
            if (!bad && logits[i] != want)
                bad = fail("logit", rec, (long)i, logits[i], want);
        }
    }
    free(x); free(logits); free(scratch);
    return bad;
#else
    fprintf(stderr, "record %ld: network vectors but no BN_TEST_MODEL compiled in\n", rec);
    return 1;
#endif
}

/* error paths must answer with a status, never a result */
static int check_errors(void)
{
    uint32_t w[1] = {0};
    int8_t a[1] = {1};
    int32_t acc[1] = {7};
    if (bn_fc(0, w, 1, a, 1, 1, acc) != BN_ERR_WTYPE || bn_fc(99, w, 1, a, 1, 1, acc) != BN_ERR_WTYPE)
        return fail("unknown wtype", -1, 0, acc[0], BN_ERR_WTYPE);
    if (bn_fc(BN_W_8BIT, NULL, 1, a, 1, 1, acc) != BN_ERR_NULL)
        return fail("null weights", -1, 0, 0, BN_ERR_NULL);
    if (bn_fc(BN_W_8BIT, w, 2, a, 1, 1, acc) != BN_ERR_SHAPE)
        return fail("words per row", -1, 0, 0, BN_ERR_SHAPE);
    if (bn_scratch_bytes(NULL) != 0)
        return fail("null model", -1, 0, 0, 0);
    return 0;
}

int main(int argc, char **argv)
{
    long rec = 0;
    char tag;
    int bad = check_errors();
    if (argc != 2 || !(in = fopen(argv[1], "r"))) {
        fprintf(stderr, "usage: vectors_driver VECTORS\n");
        return 2;
    }
    while (!bad && fscanf(in, " %c", &tag) == 1) {
        if (tag == 'K') bad = check_fc(rec);
        else if (tag == 'S') bad = check_shiftnorm(rec);
        else if (tag == 'C') bad = check_conv(rec);
        else if (tag == 'N') bad = check_network(rec);
        else { fprintf(stderr, "bad tag %c\n", tag); bad = 1; }
        rec++;
    }
    fclose(in);
    if (!bad)
        printf("ok %ld\n", rec);
    return bad;
}
