/*
 * rescalebench.c - a CH32V003 image that only applies what per-channel and
 * asymmetric weight scales would add to each FC layer of an inference, for counting
 * its cycles in the emulator (chapter 9). The engine itself has one scale per tensor,
 * folded into ShiftNorm, and no zero point.
 *
 * Built by bitnetlib/deploy/rescalebench.py (not by the Makefile: no model, no engine)
 * with the bench runtime (bench_runtime.h: the host I/O, bn_fw_sync) and a generated
 * data header BN_BENCH_DATA that defines bn_rb_layers[BN_RB_LAYERS] (per layer:
 * accumulators and input activations as the engine has them after the layer's
 * products, the activations in SRAM; per-output shifts, multipliers and zero points
 * in flash like the weights) and BN_RB_OUT_MAX. Round k runs variant
 * k / BN_RB_LAYERS on layer k % BN_RB_LAYERS: the accumulators are copied to SRAM
 * (bn_rb_load), transformed in place by the variant's function (in SRAM, like the
 * engine's hot code), and with bn_fw_io.flags & 1 copied to bn_fw_trace for the host
 * to check; then it stops at bn_fw_sync().
 *
 *   shift     acc[j] <<= e[j]                    per-channel power-of-two scales
 *   mult      acc[j] = (acc[j] * m[j]) >> 8      per-channel int16 scales (C '*': libgcc
 *                                                __mulsi3, RV32EC has no mul; it loops
 *                                                over the bits of the accumulator)
 *   mult_sa   the same by shift-add over the bits of m[j] (9 bits here)
 *   zero_ch   acc[j] += z[j] * sum(x)            per-channel zero points (__mulsi3)
 *   zero_ch_sa  the same by shift-add over the bits of |z[j]|
 *   zero_t    acc[j] += z * sum(x)               one zero point per tensor
 */
#include "bench_runtime.h"

typedef struct {
    const int32_t *acc;
    const int8_t *x;
    const uint8_t *shift;
    const int16_t *mult;
    const int8_t *zero;
    uint16_t out, in;
} bn_rb_layer;

#include BN_BENCH_DATA

#define BN_RB_VARIANTS 6
#define BN_RB_RAM __attribute__((section(".ramfunc"), noinline))

BN_BENCH_IO_LAYOUT(BN_RB_OUT_MAX);
__attribute__((section(".trace"))) int32_t bn_fw_trace[BN_RB_OUT_MAX];
static int32_t acc[BN_RB_OUT_MAX];

__attribute__((noinline)) static void bn_rb_load(const bn_rb_layer *l)
{
    uint32_t j;
    for (j = 0; j < l->out; j++)
        acc[j] = l->acc[j];
}

BN_RB_RAM static void bn_rb_shift(int32_t *a, const uint8_t *e, uint32_t n)
{
    while (n--) {
        *a = (int32_t)((uint32_t)*a << *e++);
        a++;
    }
}

BN_RB_RAM static void bn_rb_mult(int32_t *a, const int16_t *m, uint32_t n)
{
    while (n--) {
        *a = (*a * (int32_t)*m++) >> 8;
        a++;
    }
}

/* a * b by shift-add over the bits of b (b >= 0): as many rounds as b has bits */
BN_RB_RAM static uint32_t bn_rb_mul_sa(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    while (b) {
        if (b & 1u)
            r += a;
        a <<= 1;
        b >>= 1;
    }
    return r;
}

BN_RB_RAM static void bn_rb_mult_sa(int32_t *a, const int16_t *m, uint32_t n)
{
    while (n--) {
        *a = (int32_t)bn_rb_mul_sa((uint32_t)*a, (uint16_t)*m++) >> 8;
        a++;
    }
}

BN_RB_RAM static int32_t bn_rb_sum(const int8_t *x, uint32_t n)
{
    int32_t s = 0;
    while (n--)
        s += *x++;
    return s;
}

BN_RB_RAM static void bn_rb_zero_ch(int32_t *a, const int8_t *z, const int8_t *x, uint32_t n,
                                    uint32_t in)
{
    int32_t s = bn_rb_sum(x, in);
    while (n--)
        *a++ += s * (int32_t)*z++;
}

BN_RB_RAM static void bn_rb_zero_ch_sa(int32_t *a, const int8_t *z, const int8_t *x,
                                       uint32_t n, uint32_t in)
{
    uint32_t s = (uint32_t)bn_rb_sum(x, in);
    while (n--) {
        int32_t zj = *z++;
        uint32_t p = bn_rb_mul_sa(s, (uint32_t)(zj < 0 ? -zj : zj));
        *a++ += zj < 0 ? -(int32_t)p : (int32_t)p;
    }
}

BN_RB_RAM static void bn_rb_zero_t(int32_t *a, int8_t z, const int8_t *x, uint32_t n,
                                   uint32_t in)
{
    int32_t c = bn_rb_sum(x, in) * (int32_t)z;
    while (n--)
        *a++ += c;
}

static void run_round(uint32_t k)
{
    const bn_rb_layer *l = &bn_rb_layers[k % BN_RB_LAYERS];
    uint32_t v = k / BN_RB_LAYERS, j;
    bn_rb_load(l);
    if (v == 0)
        bn_rb_shift(acc, l->shift, l->out);
    else if (v == 1)
        bn_rb_mult(acc, l->mult, l->out);
    else if (v == 2)
        bn_rb_mult_sa(acc, l->mult, l->out);
    else if (v == 3)
        bn_rb_zero_ch(acc, l->zero, l->x, l->out, l->in);
    else if (v == 4)
        bn_rb_zero_ch_sa(acc, l->zero, l->x, l->out, l->in);
    else
        bn_rb_zero_t(acc, l->zero[0], l->x, l->out, l->in);
    if (bn_fw_io.flags & 1u)
        for (j = 0; j < l->out; j++)
            bn_fw_trace[j] = acc[j];
}

int main(void)
{
    uint32_t k;
    bn_fw_sync();
    for (;;) {
        for (k = 0; k < BN_RB_VARIANTS * BN_RB_LAYERS; k++) {
            run_round(k);
            bn_fw_io.status = 0;
            bn_fw_io.pred = k;
            bn_fw_io.rounds++;
            bn_fw_sync();
        }
    }
}
