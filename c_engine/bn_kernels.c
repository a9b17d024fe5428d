/*
 * bn_kernels.c - reference FC kernels for every weight type, weight decoding and
 * the fused ShiftNorm / ReLU / argmax block. The contract is in bitnet.h.
 *
 * Sums are kept in uint32_t (modular, defined behaviour) and converted back to
 * int32_t exactly at the end. Binary, Ternary, 2bitsym, 4bitsym and FP130 use no
 * multiplication (RV32EC has none); 4bit, 8bit and NF4 multiply; 4p6 reads its
 * products from a table.
 */
#include "bitnet.h"

const int8_t bn_nf4_table[16] = {
    -127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127
};

/* 4p6 products, row a + 16 (a = -16..16), column f: (f - 7) * a; column 15 is 0 */
#define P46(a, f) (int8_t)(((f) - 7) * (a))
#define ROW46(a) P46(a, 0), P46(a, 1), P46(a, 2), P46(a, 3), P46(a, 4), P46(a, 5),       \
                 P46(a, 6), P46(a, 7), P46(a, 8), P46(a, 9), P46(a, 10), P46(a, 11),     \
                 P46(a, 12), P46(a, 13), P46(a, 14), 0
const int8_t bn_4p6_table[33 * 16] = {
    ROW46(-16), ROW46(-15), ROW46(-14), ROW46(-13), ROW46(-12), ROW46(-11), ROW46(-10),
    ROW46(-9), ROW46(-8), ROW46(-7), ROW46(-6), ROW46(-5), ROW46(-4), ROW46(-3),
    ROW46(-2), ROW46(-1), ROW46(0), ROW46(1), ROW46(2), ROW46(3), ROW46(4), ROW46(5),
    ROW46(6), ROW46(7), ROW46(8), ROW46(9), ROW46(10), ROW46(11), ROW46(12), ROW46(13),
    ROW46(14), ROW46(15), ROW46(16)
};

uint8_t bn_act_max(uint8_t wtype)
{
    return wtype == BN_W_4P6 ? 16u : 127u;
}

/* exact int32 value of a uint32 holding a two's-complement sum */
static int32_t u2i(uint32_t u)
{
    return u <= 0x7FFFFFFFu ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* unsigned image of an int8 activation */
static uint32_t ua(int8_t a)
{
    return (uint32_t)(int32_t)a;
}

size_t bn_per_word(uint8_t wtype)
{
    /* a type the build leaves out (BN_WTYPES) is unknown: BN_ERR_WTYPE everywhere */
    switch (wtype) {
#if BN_HAS_WTYPE(1)
    case BN_W_BINARY: return 32;
#endif
#if BN_HAS_WTYPE(2)
    case BN_W_TERNARY: return 20;
#endif
#if BN_HAS_WTYPE(3)
    case BN_W_2BITSYM: return 16;
#endif
#if BN_HAS_WTYPE(4)
    case BN_W_4BITSYM: return 8;
#endif
#if BN_HAS_WTYPE(5)
    case BN_W_4BIT: return 8;
#endif
#if BN_HAS_WTYPE(6)
    case BN_W_8BIT: return 4;
#endif
#if BN_HAS_WTYPE(7)
    case BN_W_FP130: return 8;
#endif
#if BN_HAS_WTYPE(8)
    case BN_W_NF4: return 8;
#endif
#if BN_HAS_WTYPE(9)
    case BN_W_4P6: return 8;
#endif
    default: return 0;
    }
}

size_t bn_row_words(uint8_t wtype, size_t n)
{
    switch (wtype) {
    case BN_W_BINARY: return (n + 31) >> 5;
#if BN_HAS_WTYPE(2)          /* the only division (a libgcc call on RV32EC) */
    case BN_W_TERNARY: return (n + 19) / 20;
#endif
    case BN_W_2BITSYM: return (n + 15) >> 4;
    case BN_W_4BITSYM: case BN_W_4BIT: case BN_W_FP130: case BN_W_NF4: case BN_W_4P6:
        return (n + 7) >> 3;
    case BN_W_8BIT: return (n + 3) >> 2;
    default: return 0;
    }
}

/* the arguments of an FC kernel (bitnet.h): no NULL, n_in >= 1, n_out >= 1, words per
 * row ceil(n_in / per_word); once per call, outside the loops */
static bn_status check_fc(uint8_t wtype, const uint32_t *w, size_t wpr, const void *act,
                          size_t n_in, size_t n_out, const int32_t *acc)
{
    size_t per = bn_per_word(wtype);
    if (!w || !act || !acc)
        return BN_ERR_NULL;
    if (n_in == 0 || n_out == 0 || per == 0 || wpr != bn_row_words(wtype, n_in))
        return BN_ERR_SHAPE;
    return BN_OK;
}

/* field j (0 = most significant) of width `bits` in a word */
static uint32_t field(uint32_t word, unsigned j, unsigned bits)
{
    return (word >> (32u - bits * (j + 1u))) & ((1u << bits) - 1u);
}

/* weight i of a row of uniform-width fields */
#define FIELD_AT(row, i, per, bits) field((row)[(i) / (per)], (unsigned)((i) % (per)), (bits))

/* The write-up's row kernels for Binary, 2bitsym and FP130 (and 4bitsym below): a
 * word of weights, then a fixed inner loop over its fields (a constant count: -Os
 * then puts the loop test at the bottom), bits tested one by one; BN_HOT (SRAM in
 * the firmware, like the write-up's processfclayer). A row whose length is not a
 * multiple of the fields per word ends in a shorter loop. */
#define STEP_BINARY(s, x, a) ((s) = ((x) & 0x80000000u) ? (s) + (a) : (s) - (a))

static BN_HOT uint32_t row_binary(const uint32_t *row, const int8_t *act, size_t n_in)
{
    uint32_t s = 0, x;
    size_t k, j, full = n_in >> 5, rest = n_in & 31u;
    for (k = 0; k < full; k++) {
        x = *row++;
        for (j = 0; j < 32; j++, x <<= 1)       /* bit set: +1, clear: -1 */
            STEP_BINARY(s, x, ua(*act++));
    }
    if (rest)
        for (x = *row, j = 0; j < rest; j++, x <<= 1)
            STEP_BINARY(s, x, ua(*act++));
    return s;
}

bn_status bn_fc_binary(const uint32_t *w, size_t wpr, const int8_t *act, size_t n_in,
                       size_t n_out, int32_t *acc)
{
    size_t o;
    bn_status st = check_fc(BN_W_BINARY, w, wpr, act, n_in, n_out, acc);
    if (st != BN_OK)
        return st;
    for (o = 0; o < n_out; o++)
        acc[o] = u2i(row_binary(w + o * wpr, act, n_in));
    return BN_OK;
}

/* One trit of a ternary byte, most significant first: digit of b in base 3 at place
 * value P by comparison and subtraction (no divider), then the weight t - 1 applied
 * (zero weights and zero activations add nothing). */
#define TRIT(s, b, P, a)                                                        \
    do {                                                                        \
        if ((b) >= 2u * (P)) {                                                  \
            (b) -= 2u * (P);                                                    \
            (s) += (a);                                                         \
        } else if ((b) >= (P)) {                                                \
            (b) -= (P);                                                         \
        } else {                                                                \
            (s) -= (a);                                                         \
        }                                                                       \
    } while (0)

/* One row of Ternary weights: 4 bytes per word, 5 trits per byte (bitnet.h); the
 * last byte of a row may hold fewer than 5 weights. *bad is set on a byte > 242. */
static BN_HOT uint32_t row_ternary(const uint32_t *row, const int8_t *act, size_t n_in,
                                   int *bad)
{
    uint32_t s = 0, x = 0;
    size_t i;
    unsigned j = 0;
    for (i = 0; i + 5 <= n_in; i += 5, act += 5) {
        unsigned b;
        if (j == 0)
            x = *row++;
        j = (j + 1) & 3u;
        b = (unsigned)(x >> 24);
        x <<= 8;
        if (b > 242u)
            *bad = 1;
        TRIT(s, b, 81u, ua(act[0]));
        TRIT(s, b, 27u, ua(act[1]));
        TRIT(s, b, 9u, ua(act[2]));
        TRIT(s, b, 3u, ua(act[3]));
        TRIT(s, b, 1u, ua(act[4]));
    }
    if (i < n_in) {                 /* a last byte with n_in - i < 5 weights */
        static const uint8_t pow3[5] = {81, 27, 9, 3, 1};
        unsigned b = (unsigned)((j == 0 ? *row : x) >> 24), k;
        if (b > 242u)
            *bad = 1;
        for (k = 0; i + k < n_in; k++)
            TRIT(s, b, (unsigned)pow3[k], ua(act[k]));
    }
    return s;
}

bn_status bn_fc_ternary(const uint32_t *w, size_t wpr, const int8_t *act, size_t n_in,
                        size_t n_out, int32_t *acc)
{
    size_t o;
    int bad = 0;
    bn_status st = check_fc(BN_W_TERNARY, w, wpr, act, n_in, n_out, acc);
    if (st != BN_OK)
        return st;
    for (o = 0; o < n_out; o++)
        acc[o] = u2i(row_ternary(w + o * wpr, act, n_in, &bad));
    return bad ? BN_ERR_CORRUPT : BN_OK;
}

/* 2bitsym, 2f - 3: top bit set = positive; |2f - 3| = 2 m + 1 with m = f & 1 if
 * positive, ~f & 1 if negative (offset binary: the negative path tests the clear
 * bit, as in row_4bitsym). No zero skip: the write-up's 2-bit loop has none. */
#define STEP_2BITSYM(s, x, a)                                                   \
    do {                                                                        \
        if ((x) & 0x80000000u) {                                                \
            (s) += (a);                                                         \
            if ((x) & 0x40000000u) (s) += (a) << 1;                             \
        } else {                                                                \
            (s) -= (a);                                                         \
            if (!((x) & 0x40000000u)) (s) -= (a) << 1;                          \
        }                                                                       \
    } while (0)

static BN_HOT uint32_t row_2bitsym(const uint32_t *row, const int8_t *act, size_t n_in)
{
    uint32_t s = 0, x;
    size_t k, j, full = n_in >> 4, rest = n_in & 15u;
    for (k = 0; k < full; k++) {
        x = *row++;
        for (j = 0; j < 16; j++, x <<= 2) {
            uint32_t a = ua(*act++);
            STEP_2BITSYM(s, x, a);
        }
    }
    if (rest)
        for (x = *row, j = 0; j < rest; j++, x <<= 2) {
            uint32_t a = ua(*act++);
            STEP_2BITSYM(s, x, a);
        }
    return s;
}

bn_status bn_fc_2bitsym(const uint32_t *w, size_t wpr, const int8_t *act, size_t n_in,
                        size_t n_out, int32_t *acc)
{
    size_t o;
    bn_status st = check_fc(BN_W_2BITSYM, w, wpr, act, n_in, n_out, acc);
    if (st != BN_OK)
        return st;
    for (o = 0; o < n_out; o++)
        acc[o] = u2i(row_2bitsym(w + o * wpr, act, n_in));
    return BN_OK;
}

/* One weight of the write-up style 4bitsym kernel: zero activations skipped, the
 * weight's bits tested one by one. Field f (top bits of x), 2f - 15: top bit set =
 * positive, |2f - 15| = 8 m2 + 4 m1 + 2 m0 + 1 with magnitude bits m = f & 7 if
 * positive and m = ~f & 7 if negative. The write-up packs sign and magnitude, so its
 * loop negates the activation and tests set bits; with this offset-binary packing a
 * negative weight's magnitude bits are the clear ones, so the negative path
 * subtracts where a bit is clear: the same instructions per weight, no inversion. */
#define STEP_4BITSYM(s, x, a)                                                   \
    do {                                                                        \
        if ((a) != 0) {                                                         \
            if ((x) & 0x80000000u) {                                            \
                (s) += (a);                                                     \
                if ((x) & 0x10000000u) (s) += (a) << 1;                         \
                if ((x) & 0x20000000u) (s) += (a) << 2;                         \
                if ((x) & 0x40000000u) (s) += (a) << 3;                         \
            } else {                                                            \
                (s) -= (a);                                                     \
                if (!((x) & 0x10000000u)) (s) -= (a) << 1;                      \
                if (!((x) & 0x20000000u)) (s) -= (a) << 2;                      \
                if (!((x) & 0x40000000u)) (s) -= (a) << 3;                      \
            }                                                                   \
        }                                                                       \
    } while (0)

/* One row, the write-up's loop shape: a word of 8 weights, then 8 steps. */
static BN_HOT uint32_t row_4bitsym(const uint32_t *row, const int8_t *act, size_t n_in)
{
    uint32_t s = 0, x;
    size_t k, j, full = n_in / 8, rest = n_in % 8;
    for (k = 0; k < full; k++) {
        x = *row++;
        for (j = 0; j < 8; j++) {
            uint32_t a = ua(*act++);
            STEP_4BITSYM(s, x, a);
            x <<= 4;
        }
    }
    if (rest) {                     /* last word: fewer than 8 weights */
        x = *row;
        for (j = 0; j < rest; j++) {
            uint32_t a = ua(*act++);
            STEP_4BITSYM(s, x, a);
            x <<= 4;
        }
    }
    return s;
}

bn_status bn_fc_4bitsym(const uint32_t *w, size_t wpr, const int8_t *act, size_t n_in,
                        size_t n_out, int32_t *acc)
{
    size_t o;
    bn_status st = check_fc(BN_W_4BITSYM, w, wpr, act, n_in, n_out, acc);
    if (st != BN_OK)
        return st;
    for (o = 0; o < n_out; o++)
        acc[o] = u2i(row_4bitsym(w + o * wpr, act, n_in));
    return BN_OK;
}

bn_status bn_fc_4bit(const uint32_t *w, size_t wpr, const int8_t *act, size_t n_in,
                     size_t n_out, int32_t *acc)
{
    size_t o, i;
    bn_status st = check_fc(BN_W_4BIT, w, wpr, act, n_in, n_out, acc);
    if (st != BN_OK)
        return st;
    for (o = 0; o < n_out; o++) {
        const uint32_t *row = w + o * wpr;
        uint32_t s = 0;
        for (i = 0; i < n_in; i++)
            s += (uint32_t)(((int32_t)FIELD_AT(row, i, 8u, 4u) - 8) * act[i]);
        acc[o] = u2i(s);
    }
    return BN_OK;
}

bn_status bn_fc_8bit(const uint32_t *w, size_t wpr, const int8_t *act, size_t n_in,
                     size_t n_out, int32_t *acc)
{
    size_t o, i;
    bn_status st = check_fc(BN_W_8BIT, w, wpr, act, n_in, n_out, acc);
    if (st != BN_OK)
        return st;
    for (o = 0; o < n_out; o++) {
        const uint32_t *row = w + o * wpr;
        uint32_t s = 0;
        for (i = 0; i < n_in; i++)
            s += (uint32_t)(((int32_t)FIELD_AT(row, i, 4u, 8u) - 128) * act[i]);
        acc[o] = u2i(s);
    }
    return BN_OK;
}

/* FP130, f = sign << 3 | e -> (sign ? -1 : 1) * 2^e: one shift per weight. */
/* as the write-up: the activation negated for a negative weight, then one shift */
#define STEP_FP130(s, x, a)                                                     \
    do {                                                                        \
        uint32_t t_ = ((x) & 0x80000000u) ? 0u - (a) : (a);                     \
        (s) += t_ << (((x) >> 28) & 7u);                                        \
    } while (0)

static BN_HOT uint32_t row_fp130(const uint32_t *row, const int8_t *act, size_t n_in)
{
    uint32_t s = 0, x;
    size_t k, j, full = n_in >> 3, rest = n_in & 7u;
    for (k = 0; k < full; k++) {
        x = *row++;
        for (j = 0; j < 8; j++, x <<= 4) {
            uint32_t a = ua(*act++);
            STEP_FP130(s, x, a);
        }
    }
    if (rest)
        for (x = *row, j = 0; j < rest; j++, x <<= 4) {
            uint32_t a = ua(*act++);
            STEP_FP130(s, x, a);
        }
    return s;
}

bn_status bn_fc_fp130(const uint32_t *w, size_t wpr, const int8_t *act, size_t n_in,
                      size_t n_out, int32_t *acc)
{
    size_t o;
    bn_status st = check_fc(BN_W_FP130, w, wpr, act, n_in, n_out, acc);
    if (st != BN_OK)
        return st;
    for (o = 0; o < n_out; o++)
        acc[o] = u2i(row_fp130(w + o * wpr, act, n_in));
    return BN_OK;
}

bn_status bn_fc_nf4(const uint32_t *w, size_t wpr, const int8_t *act, size_t n_in,
                    size_t n_out, int32_t *acc)
{
    size_t o, i;
    bn_status st = check_fc(BN_W_NF4, w, wpr, act, n_in, n_out, acc);
    if (st != BN_OK)
        return st;
    for (o = 0; o < n_out; o++) {
        const uint32_t *row = w + o * wpr;
        uint32_t s = 0;
        for (i = 0; i < n_in; i++)
            s += (uint32_t)((int32_t)bn_nf4_table[FIELD_AT(row, i, 8u, 4u)] * act[i]);
        acc[o] = u2i(s);
    }
    return BN_OK;
}

/* 4p6: a word of 8 fields, each product read from bn_4p6_table (no multiplier, no
 * bit tests); the activation picks the table row, the field the column. */
#define STEP_4P6(s, x, a)                                                       \
    ((s) += (uint32_t)(int32_t)bn_4p6_table[((uint32_t)((a) + 16) << 4) | ((x) >> 28)])
/* a nibble 15 in x (an invalid 4p6 field): its low 3 bits + 1 carry into its top bit */
#define NIBBLE15(x) ((((x) & 0x77777777u) + 0x11111111u) & (x) & 0x88888888u)

static BN_HOT uint32_t row_4p6(const uint32_t *row, const int8_t *act, size_t n_in,
                               uint32_t *bad)
{
    uint32_t s = 0, x;
    size_t k, j, full = n_in >> 3, rest = n_in & 7u;
    for (k = 0; k < full; k++) {
        x = *row++;
        *bad |= NIBBLE15(x);
        for (j = 0; j < 8; j++, x <<= 4)
            STEP_4P6(s, x, *act++);
    }
    if (rest) {                     /* padding fields are 0: never 15 */
        x = *row;
        *bad |= NIBBLE15(x);
        for (j = 0; j < rest; j++, x <<= 4)
            STEP_4P6(s, x, *act++);
    }
    return s;
}

bn_status bn_fc_4p6(const uint32_t *w, size_t wpr, const int8_t *act, size_t n_in,
                    size_t n_out, int32_t *acc)
{
    size_t o, i;
    uint32_t bad = 0;
    bn_status st = check_fc(BN_W_4P6, w, wpr, act, n_in, n_out, acc);
    if (st != BN_OK)
        return st;
    for (i = 0; i < n_in; i++)      /* the table's rows: once per call, not per product */
        if (act[i] < -16 || act[i] > 16)
            return BN_ERR_RANGE;
    for (o = 0; o < n_out; o++)
        acc[o] = u2i(row_4p6(w + o * wpr, act, n_in, &bad));
    return bad ? BN_ERR_CORRUPT : BN_OK;
}

/* 4p6 in the cols layout (bn_fc_cols): one pass down an input's column adds the table
 * row t to the outputs' sums; *bad collects any field 15 it reads. */
static BN_HOT void col_4p6(const uint32_t *col, size_t wpc, size_t n_out, const int8_t *t,
                           uint32_t *u, uint32_t *bad)
{
    size_t k, j, o = 0;
    for (k = 0; k < wpc; k++) {
        uint32_t x = col[k];
        *bad |= NIBBLE15(x);
        for (j = 0; j < 8 && o < n_out; j++, o++, x <<= 4)
            u[o] += (uint32_t)(int32_t)t[x >> 28];
    }
}

/* acc[o] = c wsum[o] + sum_i w[o][i] (a_i - c), c = act[0] with wsum, else 0. Inputs
 * equal to c are skipped; any other d = a_i - c (|d| <= 32) is added as at most two table
 * rows of |step| <= 16, each one pass down the input's column. */
bn_status bn_fc_cols_4p6(const uint32_t *w, size_t wpc, const int8_t *act, size_t n_in,
                         size_t n_out, const int32_t *wsum, int32_t *acc)
{
    uint32_t *u = (uint32_t *)acc, bad = 0;   /* unsigned view: modular sums, no UB */
    int32_t c;
    size_t i, o;
    if (!w || !act || !acc)
        return BN_ERR_NULL;
    if (n_in == 0 || n_out == 0 || wpc != bn_row_words(BN_W_4P6, n_out))
        return BN_ERR_SHAPE;
    for (i = 0; i < n_in; i++)
        if (act[i] < -16 || act[i] > 16)
            return BN_ERR_RANGE;
    c = wsum ? act[0] : 0;
    for (o = 0; o < n_out; o++)     /* one multiply per output, only when centred */
        u[o] = wsum ? (uint32_t)c * (uint32_t)wsum[o] : 0u;
    for (i = 0; i < n_in; i++) {
        int32_t d = act[i] - c;
        while (d != 0) {
            int32_t step = d > 16 ? 16 : d < -16 ? -16 : d;
            col_4p6(w + i * wpc, wpc, n_out, bn_4p6_table + ((uint32_t)(step + 16) << 4), u,
                    &bad);
            d -= step;
        }
    }
    return bad ? BN_ERR_CORRUPT : BN_OK;
}

bn_status bn_fc(uint8_t wtype, const uint32_t *w, size_t wpr, const int8_t *act,
                size_t n_in, size_t n_out, int32_t *acc)
{
    switch (wtype) {
#if BN_HAS_FC_WTYPE(1)
    case BN_W_BINARY: return bn_fc_binary(w, wpr, act, n_in, n_out, acc);
#endif
#if BN_HAS_FC_WTYPE(2)
    case BN_W_TERNARY: return bn_fc_ternary(w, wpr, act, n_in, n_out, acc);
#endif
#if BN_HAS_FC_WTYPE(3)
    case BN_W_2BITSYM: return bn_fc_2bitsym(w, wpr, act, n_in, n_out, acc);
#endif
#if BN_HAS_FC_WTYPE(4)
    case BN_W_4BITSYM: return bn_fc_4bitsym(w, wpr, act, n_in, n_out, acc);
#endif
#if BN_HAS_FC_WTYPE(5)
    case BN_W_4BIT: return bn_fc_4bit(w, wpr, act, n_in, n_out, acc);
#endif
#if BN_HAS_FC_WTYPE(6)
    case BN_W_8BIT: return bn_fc_8bit(w, wpr, act, n_in, n_out, acc);
#endif
#if BN_HAS_FC_WTYPE(7)
    case BN_W_FP130: return bn_fc_fp130(w, wpr, act, n_in, n_out, acc);
#endif
#if BN_HAS_FC_WTYPE(8)
    case BN_W_NF4: return bn_fc_nf4(w, wpr, act, n_in, n_out, acc);
#endif
#if BN_HAS_FC_WTYPE(9)
    case BN_W_4P6: return bn_fc_4p6(w, wpr, act, n_in, n_out, acc);
#endif
    default: return BN_ERR_WTYPE;
    }
}

#if BN_HAS_WTYPE(2)
static bn_status decode_ternary(const uint32_t *row, size_t n, int16_t *out)
{
    static const uint8_t pow3[5] = {81, 27, 9, 3, 1};
    size_t i, k;
    for (i = 0; i < n; i += 5) {
        unsigned b = (unsigned)FIELD_AT(row, i / 5, 4u, 8u);
        if (b > 242u)
            return BN_ERR_CORRUPT;
        for (k = 0; k < 5 && i + k < n; k++) {
            int16_t t = 0;
            while (b >= pow3[k]) {
                b -= pow3[k];
                t++;
            }
            out[i + k] = (int16_t)(t - 1);
        }
    }
    return BN_OK;
}
#endif

/* integer weight of field f of a fixed-width type */
static int16_t decode_field(uint8_t wtype, uint32_t f)
{
    int16_t v = (int16_t)f;
    (void)v;                    /* unused when the build has only FP130, Ternary or NF4 */
    switch (wtype) {            /* only the build's types (BN_WTYPES): less flash */
#if BN_HAS_WTYPE(1)
    case BN_W_BINARY: return (int16_t)(2 * v - 1);
#endif
#if BN_HAS_WTYPE(3)
    case BN_W_2BITSYM: return (int16_t)(2 * v - 3);
#endif
#if BN_HAS_WTYPE(4)
    case BN_W_4BITSYM: return (int16_t)(2 * v - 15);
#endif
#if BN_HAS_WTYPE(5)
    case BN_W_4BIT: return (int16_t)(v - 8);
#endif
#if BN_HAS_WTYPE(6)
    case BN_W_8BIT: return (int16_t)(v - 128);
#endif
#if BN_HAS_WTYPE(7)
    case BN_W_FP130: return (int16_t)((f & 8u) ? -(1 << (f & 7u)) : (1 << (f & 7u)));
#endif
#if BN_HAS_WTYPE(9)
    case BN_W_4P6: return (int16_t)(v - 7);     /* f = 15 -> 8: bn_unpack_* reject it */
#endif
#if BN_HAS_WTYPE(8)
    default: return bn_nf4_table[f & 15u];   /* NF4; a type the build lacks never gets here */
#else
    default: return 0;
#endif
    }
}

/* weights first .. first + n - 1 of packed words of a uniform-width type (per fields
 * per word, a power of two): shifts, no division. A 4p6 field 15 is BN_ERR_CORRUPT. */
static bn_status decode_fields(uint8_t wtype, const uint32_t *w, size_t per, size_t first,
                               size_t n, int16_t *out)
{
    unsigned lb = per == 32 ? 5u : per == 16 ? 4u : per == 8 ? 3u : 2u, bits = 32u >> lb;
    size_t i;
    for (i = first; i < first + n; i++) {
        unsigned j = (unsigned)(i & (per - 1u));
        uint32_t f = (w[i >> lb] >> (32u - bits * (j + 1u))) & ((1u << bits) - 1u);
#if BN_HAS_WTYPE(9)
        if (wtype == BN_W_4P6 && f == 15u)
            return BN_ERR_CORRUPT;
#endif
        *out++ = decode_field(wtype, f);
    }
    return BN_OK;
}

bn_status bn_unpack_row(uint8_t wtype, const uint32_t *row, size_t words, size_t n,
                        int16_t *out)
{
    size_t per = bn_per_word(wtype);
    if (!row || !out)
        return BN_ERR_NULL;
    if (per == 0)
        return BN_ERR_WTYPE;
    if (words != bn_row_words(wtype, n))
        return BN_ERR_SHAPE;
#if BN_HAS_WTYPE(2)
    if (wtype == BN_W_TERNARY)
        return decode_ternary(row, n, out);
#endif
    return decode_fields(wtype, row, per, 0, n, out);
}

bn_status bn_unpack_flat(uint8_t wtype, const uint32_t *w, size_t words, size_t first,
                         size_t n, int16_t *out)
{
    size_t per = bn_per_word(wtype);
    if (!w || !out)
        return BN_ERR_NULL;
    if (per == 0 || wtype == BN_W_TERNARY)
        return BN_ERR_WTYPE;
    if (first + n < first || bn_row_words(wtype, first + n) > words)
        return BN_ERR_SHAPE;
    return decode_fields(wtype, w, per, first, n, out);
}

#if !BN_SHIFTNORM_ASM   /* the fast firmware: bn_kernels_rv32e.S */
BN_HOT_AUX bn_status bn_shiftnorm_relu(const int32_t *acc, size_t n, int8_t *out,
                                       uint8_t *shift, uint16_t *argmax)
{
    const int32_t *p, *end, *best;
    uint8_t *o = (uint8_t *)out;            /* 0..127: stored without sign handling */
    int32_t max;
    unsigned s = 0;
    uint32_t half, m;
    if (!acc || !out)
        return BN_ERR_NULL;
    if (n == 0)
        return BN_ERR_SHAPE;
    /* do-while loops, test at the bottom: one taken branch per element (-Os keeps
     * while loops with a jump back to the test, which costs more in flash) */
    p = best = acc;
    end = acc + n;
    max = *p;
    do {
        if (*p > max) {
            max = *p;
            best = p;
        }
    } while (++p < end);
    /* smallest s with (max >> s) <= 127: the bit length of max >> 7 (max > 0) */
    for (m = max > 127 ? (uint32_t)max >> 7 : 0u; m; m >>= 1)
        s++;
    half = s ? 1u << (s - 1u) : 0u;
    p = acc;
    do {
        int32_t v = *p;
        uint32_t r = 0;                         /* ReLU */
        if (v > 0) {
            r = ((uint32_t)v + half) >> s;      /* rshift, then saturate */
            if (r > 127u)
                r = 127u;
        }
        *o++ = (uint8_t)r;
    } while (++p < end);
    if (shift)
        *shift = (uint8_t)s;
    if (argmax)
        *argmax = (uint16_t)(best - acc);
    return BN_OK;
}
#endif

bn_status bn_act_limit(const int8_t *in, size_t n, uint8_t limit, int8_t *out, uint8_t *shift)
{
    size_t i;
    uint32_t m = 0, s = 0, half;
    if (!in || !out)
        return BN_ERR_NULL;
    if (n == 0)
        return BN_ERR_SHAPE;
    for (i = 0; i < n; i++) {
        uint32_t v = in[i] < 0 ? 0u - (uint32_t)(int32_t)in[i] : (uint32_t)in[i];
        if (v > m)
            m = v;
    }
    while ((m >> s) > limit)
        s++;
    half = s ? 1u << (s - 1u) : 0u;
    for (i = 0; i < n; i++) {
        int32_t v = in[i];
        uint32_t r = ((v < 0 ? 0u - (uint32_t)v : (uint32_t)v) + half) >> s;
        if (r > limit)
            r = limit;
        out[i] = (int8_t)(v < 0 ? -(int32_t)r : (int32_t)r);
    }
    if (shift)
        *shift = (uint8_t)s;
    return BN_OK;
}
