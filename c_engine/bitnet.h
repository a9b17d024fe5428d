/*
 * bitnet.h - the public contract of the BitNetMCU inference engine (C99).
 *
 * Everything the kernels assume is written down here once; bitnetlib/deploy/packing.py
 * (packing) and bitnetlib/deploy/intmodel.py (the integer reference model) implement
 * the same contract and the tests check all three agree bit for bit. The weight-type
 * table (ids, fields per word, field values, which types have a cols kernel) has its
 * one home in bitnetlib/wtypes.py; tests/test_wtypes.py holds this header's enum and
 * the kernels' switches equal to it. The status codes and buffer sizes are read from
 * here by the Python side (the bn_status enum; bn_scratch_bytes, bn_trace_len).
 *
 * NUMBERS
 *   activations  int8_t. Network input: the 16x16 image quantized per image by
 *                absmax, code = round(x * 127 / max|x|), in -127..127.
 *                Hidden FC activations are 0..127 (ReLU + ShiftNorm).
 *                A layer of a type with an activation limit L < 127 (bn_act_max:
 *                4p6, L = 16) first brings its input into -L..L (ACTIVATION LIMIT).
 *   accumulators int32_t, computed in uint32_t modular arithmetic and converted
 *                back exactly (no signed overflow, no left shift of a negative
 *                value anywhere); the true sum must fit in int32 (it does for
 *                any layer of up to 65535 inputs: |w| <= 128, |a| <= 128).
 *   conv maps    int8_t, 0..BN_MAP_MAX = 127 (after ReLU, rounding shift, saturation):
 *                the export chooses each conv layer's shift so that its map stays
 *                within BN_MAP_MAX on calibration images (bitnetlib/training/export.py,
 *                CONV_TARGET); larger values on other images saturate.
 *
 * ROUNDING SHIFT (used by ShiftNorm and the conv layers), for v > 0, s >= 0:
 *       rshift(v, s) = (v + (s ? 1 << (s - 1) : 0)) >> s     (round half up)
 *   computed in uint32_t; v <= 0 gives 0 (ReLU).
 *
 * FUSED SHIFTNORM / RELU / ARGMAX (after every FC layer):
 *   argmax  = first index of the largest accumulator (taken BEFORE ReLU);
 *   shift   = smallest s >= 0 with (max >> s) <= 127 (never a left shift: a
 *             small maximum is left as it is); max <= 0 gives s = 0;
 *   out[i]  = acc[i] <= 0 ? 0 : min(127, rshift(acc[i], shift)).
 *   The output layer returns its accumulators (logits) and the argmax.
 *
 * ACTIVATION LIMIT (bn_act_limit; before an FC layer whose type has bn_act_max L
 * < 127, on its int8 input, per image): s = smallest s >= 0 with (max|a| >> s) <= L,
 * a -> sign(a) * min(L, rshift(|a|, s)). The network input (max|a| = 127) takes s = 3
 * for L = 16; hidden activations (ShiftNorm's 0..127) keep their sign (>= 0).
 *
 * WEIGHT PACKING. A weight matrix is out rows of in weights; each row is packed
 * on its own into words_per_row = ceil(in / per_word) uint32_t words, rows one
 * after the other. Fields fill a word from the MOST significant end: the first
 * weight of a row sits in the top bits of the row's first word. Padding fields at
 * the end of a row's last word are zero bits and are never read (kernels stop at
 * `in`), so any width packs; the words are values (endianness plays no part).
 *
 *   type      id bits per_word field f -> integer weight
 *   Binary     1   1   32      0 -> -1, 1 -> +1
 *   Ternary    2  1.6  20      byte = 81 t0 + 27 t1 + 9 t2 + 3 t3 + t4 (t_k the
 *                              k-th of 5 weights, trit t -> t - 1), 4 bytes per
 *                              word, first byte most significant; bytes > 242 are
 *                              invalid (BN_ERR_CORRUPT)
 *   2bitsym    3   2   16      f -> 2f - 3           (-3, -1, 1, 3)
 *   4bitsym    4   4    8      f -> 2f - 15          (odd -15 .. 15, no zero)
 *   4bit       5   4    8      f -> f - 8            (-8 .. 7)
 *   8bit       6   8    4      f -> f - 128          (-128 .. 127)
 *   FP130      7   4    8      f = sign << 3 | e -> (sign ? -1 : 1) * 2^e, e 0..7
 *   NF4        8   4    8      f -> bn_nf4_table[f]  (round(127 * NF4 level))
 *   4p6        9   4    8      f -> f - 7            (-7 .. 7; f = 15 is invalid,
 *                              BN_ERR_CORRUPT). Activations -16..16 (bn_act_max):
 *                              every product is an int8, read from bn_4p6_table
 *                              (Trusov et al. 2024, "4.6-bit"; wtypes.py: why 15 x 17)
 *
 *   Example, 4bitsym, row (-15, 1, 3, 15, -1, -3, 13, 7): fields 0,8,9,15,7,6,14,11
 *   -> word 0x089F76EB. Ternary, first 5 weights (1, 0, -1, -1, 1): trits
 *   2,1,0,0,2 -> byte 2*81 + 1*27 + 2 = 191 = 0xBF in bits 31..24 of word 0.
 *
 * LAYERS (bn_layer, emitted by `bitnet export` into a generated header):
 *   BN_LAYER_FC      in -> out features, weights out x in.
 *   BN_LAYER_CONV3X3 first layer of a CNN: 1 input channel (side x side int8
 *                    image) -> out channels, 3x3, no padding, weights out x 9.
 *   BN_LAYER_DW3X3   depthwise 3x3 (out channels, one 3x3 filter each),
 *                    no padding, weights out x 9.
 *   A conv layer computes acc = sum w * x, then rshift(acc, shift) with ReLU,
 *   saturated to BN_MAP_MAX, then a 2x2/2 max-pool if pool = 1. Conv layers
 *   form a prefix of the network and run one channel at a time (a channel goes
 *   through all conv layers before the next starts: little RAM; the pool is fused
 *   into the conv, so a map is stored pooled). Their output, channel-major
 *   (c * h * w + y * w + x, like torch's flatten), int8 0..127, is the first FC
 *   layer's input as it is (ShiftNorm's rule on values <= 127 takes shift 0: the
 *   identity, so the runner skips it).
 *   Conv weight layouts: BN_LAYOUT_ROWS, 9 weights per channel, each channel padded
 *   to whole words (words_per_row = ceil(9 / per_word)); BN_LAYOUT_FLAT (2), all
 *   out x 9 weights packed as one row (channel c's weights are fields 9c .. 9c + 8;
 *   words_per_row = ceil(9 out / per_word); not Ternary): 8-bit weights take 9
 *   bytes a channel instead of 12 (`bitnet export --layout cols`, the firmware).
 *
 * FC WEIGHT LAYOUTS (bn_layer.layout; the same integers, only the order differs):
 *   BN_LAYOUT_ROWS (0)  the packing above: out rows of in weights (every kernel;
 *                       bn_fc_<type>, the write-up's row-by-row style).
 *   BN_LAYOUT_COLS (1)  the transposed matrix packed the same way: in columns of
 *                       out weights, words_per_row = ceil(out / per_word) words per
 *                       column (`bitnet export --layout cols`). Types Binary, Ternary,
 *                       2bitsym, 4bitsym, 4bit, FP130, NF4, 4p6 (the fast kernels,
 *                       bn_fc_cols: skip zero inputs, a product table per non-zero
 *                       input built by additions; 4-bit types in register tiles of
 *                       8 outputs over chunks of non-zero inputs, -DBN_RUN4_ASM=1
 *                       taking the tile kernel from bn_kernels_rv32e.S; Ternary with
 *                       tables over pairs of inputs, a byte > 242 in a column it reads
 *                       is BN_ERR_CORRUPT). 8bit stays in rows.
 *   Centring (first layer only, cols layout): wsum[o] = sum_i w[o][i] is stored;
 *   the kernel takes c = act[0] (the MNIST background on nearly every image) and
 *   computes acc[o] = c * wsum[o] + sum_i w[o][i] * (act[i] - c), which is the same
 *   integer for any c, so background pixels are zero inputs and are skipped.
 *
 * BUILD-TIME SELECTION (firmware size): BN_WTYPES (bit t set = type id t has a
 * kernel, default all), BN_FC_WTYPES (the types that get FC kernels, default
 * BN_WTYPES: a CNN's 8-bit conv weights need no 8-bit FC kernel) and BN_LAYOUTS (bit 0 rows, bit 1 cols, default both) drop
 * unused kernels, BN_CONV=0 the conv layers, BN_FC_CENTRE=0 the centring; a disabled
 * type, layout, layer kind or centring is BN_ERR_WTYPE / BN_ERR_LAYER.
 * BN_TRUST_MODEL=1 (bn_network.c; the fast firmware, flash): bn_run_network's model
 * checks only measure the model, for a compiled-in model the host engine validated.
 * BN_HOT (default empty) marks hot kernels; the firmware defines it to place them
 * in SRAM (noinline, section .ramfunc). BN_HOT_AUX marks the next hottest code
 * (ShiftNorm, the accumulator set-up of the cols kernels): SRAM in the fast
 * firmware, flash in the baseline (the write-up puts only its FC loop in SRAM).
 *
 * Every entry point returns a bn_status; nothing allocates memory, nothing keeps
 * state between calls; the caller provides all buffers.
 */
#ifndef BITNET_H
#define BITNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BN_MAGIC 0x424E4D31u  /* "BNM1" */
#define BN_VERSION 1u
#define BN_MAP_MAX 127      /* largest conv map entry (int8 maps; see NUMBERS) */
#define BN_MAX_SIDE 32      /* largest conv input side (the conv's row ring: 3 rows) */

#ifndef BN_WTYPES
#define BN_WTYPES 0x3FEu     /* every type id 1..9 */
#endif
#ifndef BN_LAYOUTS
#define BN_LAYOUTS 3u        /* rows and cols */
#endif
#ifndef BN_CONV
#define BN_CONV 1            /* 0: no conv layers (FC-only firmware, less flash) */
#endif
#ifndef BN_FC_CENTRE
#define BN_FC_CENTRE 1       /* 0: no centring (a cols layer with wsum is BN_ERR_LAYER;
                                the firmware of a model without one: less flash) */
#endif
#define BN_HAS_WTYPE(t) ((BN_WTYPES >> (t)) & 1u)   /* t: a number (for #if) */
#ifndef BN_FC_WTYPES
#define BN_FC_WTYPES BN_WTYPES  /* types with FC kernels (the firmware: its FC layers') */
#endif
#define BN_HAS_FC_WTYPE(t) (BN_HAS_WTYPE(t) && ((BN_FC_WTYPES >> (t)) & 1u))
/* SRAM placement for the firmware (-DBN_HOT=BN_RAMFUNC): one section per function
 * (named after the line), so that --gc-sections still drops unused kernels. */
#if defined(__GNUC__)
#define BN_STR2_(x) #x
#define BN_STR_(x) BN_STR2_(x)
#define BN_RAMFUNC __attribute__((noinline, section(".ramfunc." BN_STR_(__LINE__))))
#endif
#ifndef BN_HOT
#define BN_HOT
#endif
#ifndef BN_HOT_AUX
#define BN_HOT_AUX
#endif
#ifndef BN_HOT_CONV
#define BN_HOT_CONV
#endif

typedef enum {
    BN_OK = 0,
    BN_ERR_NULL = -1,        /* a required pointer is NULL */
    BN_ERR_WTYPE = -2,       /* unknown weight type id */
    BN_ERR_LAYER = -3,       /* unknown layer kind or layers in an impossible order */
    BN_ERR_SHAPE = -4,       /* sizes disagree (buffer lengths, in/out, words per row) */
    BN_ERR_SCRATCH = -5,     /* scratch buffer too small */
    BN_ERR_MODEL = -6,       /* bad magic or version: not a model of this engine */
    BN_ERR_CORRUPT = -7,     /* an invalid field in the packed weights */
    BN_ERR_RANGE = -8        /* an activation outside the layer type's range (bn_act_max) */
} bn_status;

typedef enum {
    BN_W_BINARY = 1, BN_W_TERNARY = 2, BN_W_2BITSYM = 3, BN_W_4BITSYM = 4,
    BN_W_4BIT = 5, BN_W_8BIT = 6, BN_W_FP130 = 7, BN_W_NF4 = 8, BN_W_4P6 = 9
} bn_wtype;

typedef enum { BN_LAYER_FC = 1, BN_LAYER_CONV3X3 = 2, BN_LAYER_DW3X3 = 3 } bn_layer_kind;

typedef enum { BN_LAYOUT_ROWS = 0, BN_LAYOUT_COLS = 1, BN_LAYOUT_FLAT = 2 } bn_layout;

typedef struct {
    uint8_t kind;            /* bn_layer_kind */
    uint8_t wtype;           /* bn_wtype */
    uint8_t shift;           /* conv: fixed rounding right shift; FC: unused (0) */
    uint8_t pool;            /* conv: 1 = 2x2 max-pool after; FC: 0 */
    uint16_t in;             /* FC: input features; conv: input side (square) */
    uint16_t out;            /* FC: output features; conv: channels */
    uint16_t words_per_row;  /* ceil(row length / per_word); row length: FC in, conv 9;
                                cols layout: words per column, ceil(out / per_word) */
    const uint32_t *weights; /* out * words_per_row words (cols: in * words_per_row) */
    const int32_t *wsum;     /* cols layout, first layer: per-output weight sums
                                (centring, see above); NULL otherwise */
    uint8_t layout;          /* bn_layout; 0 (rows) when left out of an initializer */
} bn_layer;

typedef struct {
    uint32_t magic;          /* BN_MAGIC */
    uint32_t version;        /* BN_VERSION */
    uint32_t model_id;       /* fingerprint of shapes, types, shifts and weights */
    uint16_t n_layers;
    uint16_t input_len;      /* int8 inputs per image (256 for 16x16) */
    uint16_t n_classes;      /* outputs of the last layer */
    const bn_layer *layers;
} bn_model;

extern const int8_t bn_nf4_table[16];
/* 4p6 products: bn_4p6_table[(a + 16) << 4 | f] = (f - 7) * a, a in -16..16, f 0..14
 * (column 15: 0, never read: the field is invalid). */
extern const int8_t bn_4p6_table[33 * 16];

/* Largest |activation| a layer of this type takes: 127, or 16 for 4p6. */
uint8_t bn_act_max(uint8_t wtype);
/* ACTIVATION LIMIT (above): out[i] from in[i], i < n, into -limit..limit (in place
 * allowed); *shift (may be NULL) receives s. n >= 1. */
bn_status bn_act_limit(const int8_t *in, size_t n, uint8_t limit, int8_t *out, uint8_t *shift);

/* Fields per uint32_t word of a weight type, 0 if the type is unknown. */
size_t bn_per_word(uint8_t wtype);
/* Words of a packed row of n weights, ceil(n / per_word); 0 if the type is unknown.
 * Shifts for the power-of-two widths (RV32EC has no divider: a division is a
 * libgcc call). */
size_t bn_row_words(uint8_t wtype, size_t n);

/* Decode n weights of one packed row into integer weights. */
bn_status bn_unpack_row(uint8_t wtype, const uint32_t *row, size_t words, size_t n,
                        int16_t *out);
/* Decode weights first .. first + n - 1 of a flat stream (BN_LAYOUT_FLAT: one row of
 * `words` words). Every type but Ternary (BN_ERR_WTYPE). */
bn_status bn_unpack_flat(uint8_t wtype, const uint32_t *w, size_t words, size_t first,
                         size_t n, int16_t *out);

/* acc[o] = sum_i w[o][i] * act[i], o < n_out, i < n_in. One kernel per type;
 * bn_fc dispatches on wtype. n_in >= 1 and n_out >= 1, words_per_row must be
 * ceil(n_in / per_word) (else BN_ERR_SHAPE). */
typedef bn_status (*bn_fc_fn)(const uint32_t *w, size_t words_per_row, const int8_t *act,
                              size_t n_in, size_t n_out, int32_t *acc);
bn_status bn_fc_binary(const uint32_t *w, size_t words_per_row, const int8_t *act,
                       size_t n_in, size_t n_out, int32_t *acc);
bn_status bn_fc_ternary(const uint32_t *w, size_t words_per_row, const int8_t *act,
                        size_t n_in, size_t n_out, int32_t *acc);
bn_status bn_fc_2bitsym(const uint32_t *w, size_t words_per_row, const int8_t *act,
                        size_t n_in, size_t n_out, int32_t *acc);
bn_status bn_fc_4bitsym(const uint32_t *w, size_t words_per_row, const int8_t *act,
                        size_t n_in, size_t n_out, int32_t *acc);
bn_status bn_fc_4bit(const uint32_t *w, size_t words_per_row, const int8_t *act,
                     size_t n_in, size_t n_out, int32_t *acc);
bn_status bn_fc_8bit(const uint32_t *w, size_t words_per_row, const int8_t *act,
                     size_t n_in, size_t n_out, int32_t *acc);
bn_status bn_fc_fp130(const uint32_t *w, size_t words_per_row, const int8_t *act,
                      size_t n_in, size_t n_out, int32_t *acc);
bn_status bn_fc_nf4(const uint32_t *w, size_t words_per_row, const int8_t *act,
                    size_t n_in, size_t n_out, int32_t *acc);
/* 4p6: act in -16..16 (else BN_ERR_RANGE), a field 15 is BN_ERR_CORRUPT. */
bn_status bn_fc_4p6(const uint32_t *w, size_t words_per_row, const int8_t *act,
                    size_t n_in, size_t n_out, int32_t *acc);
bn_status bn_fc(uint8_t wtype, const uint32_t *w, size_t words_per_row, const int8_t *act,
                size_t n_in, size_t n_out, int32_t *acc);

/* Cols layout (see above): w in columns of words_per_col words; wsum NULL (no
 * centring) or out sums (centre c = act[0]); same acc as bn_fc on the rows layout.
 * n_in >= 1, n_out >= 1, words_per_col ceil(n_out / per_word) (else BN_ERR_SHAPE).
 * Types: Binary, Ternary, 2bitsym, 4bitsym, 4bit, FP130, NF4, 4p6 (8bit: BN_ERR_WTYPE). */
bn_status bn_fc_cols(uint8_t wtype, const uint32_t *w, size_t words_per_col, const int8_t *act,
                     size_t n_in, size_t n_out, const int32_t *wsum, int32_t *acc);
/* bn_fc_cols of 4p6 (bn_kernels.c): inputs equal to the centre skipped, every other one
 * one or two passes down its column adding a row of bn_4p6_table; a field 15 in a column
 * it reads is BN_ERR_CORRUPT, an activation beyond -16..16 BN_ERR_RANGE. */
bn_status bn_fc_cols_4p6(const uint32_t *w, size_t words_per_col, const int8_t *act,
                         size_t n_in, size_t n_out, const int32_t *wsum, int32_t *acc);

/* Fused block: out[i] (int8, 0..127) from acc[i], see above; *shift and *argmax
 * (either may be NULL) receive the shift used and the argmax. n >= 1. */
bn_status bn_shiftnorm_relu(const int32_t *acc, size_t n, int8_t *out, uint8_t *shift,
                            uint16_t *argmax);

/* One channel of a 3x3 valid convolution, ReLU, rshift, saturation to BN_MAP_MAX:
 * in side x side (any int16 values: the oracle), out (side - 2) x (side - 2), w 9
 * weights (row-major 3x3). */
bn_status bn_conv3x3_relu(const int16_t *in, size_t side, const int16_t *w, uint8_t shift,
                          int16_t *out);
/* 2x2 max-pool, stride 2: in side x side (side even), out side/2 x side/2. */
bn_status bn_maxpool2x2(const int16_t *in, size_t side, int16_t *out);
/* The runner's conv kernel: one channel of bn_conv3x3_relu and, if pool = 1, of
 * bn_maxpool2x2 after it, in one pass (same integers); in the int8 image or an int8
 * conv map (any values: centred on the smallest, so every input is 0..255), out
 * (side - 2) squared entries 0..BN_MAP_MAX, or (side - 2) / 2 squared with pool (side
 * even). 3 <= side <= BN_MAX_SIDE. BN_CONV_FAST: see bn_conv.c. */
bn_status bn_conv3x3_i8(const int8_t *in, size_t side, const int16_t *w, uint8_t shift,
                        uint8_t pool, int8_t *out);

/* Bytes of scratch memory bn_run_network needs for this model (0: invalid model),
 * two regions: X, int32 accumulators for the widest FC layer, which for a CNN share
 * their bytes with the two int8 conv maps (a channel's maps alternate between them;
 * the first conv reads the int8 input in place, the last writes the features);
 * Y, the int8 activation buffer (a layer reads it all before its ShiftNorm refills
 * it), for a CNN first the int8 conv features. */
size_t bn_scratch_bytes(const bn_model *m);

/* Run one image: input input_len int8; logits n_classes int32 (the output layer's
 * accumulators); *pred the argmax. trace (may be NULL) receives, in order, every
 * FC layer's accumulators and, for a CNN, the conv feature vector before the
 * first FC layer; trace_len must be >= bn_trace_len(m) when trace is given. */
bn_status bn_run_network(const bn_model *m, const int8_t *input, size_t input_len,
                         int32_t *logits, size_t logits_len, uint16_t *pred,
                         void *scratch, size_t scratch_bytes,
                         int32_t *trace, size_t trace_len);
size_t bn_trace_len(const bn_model *m);

/* n images, inputs n x input_len, preds n, logits n x n_classes (may be NULL when
 * n_classes <= 64). */
bn_status bn_run_batch(const bn_model *m, const int8_t *inputs, size_t n, size_t input_len,
                       uint16_t *preds, int32_t *logits, void *scratch, size_t scratch_bytes);

/* ---- Mixture of experts (bn_moe.c; bitnetlib/deploy/moe.py writes the struct).
 * trunk (NULL: none) runs on the input; its output accumulators go through the
 * fused ShiftNorm/ReLU into int8 features (the input itself without a trunk); the
 * gate network (n_classes = n_experts) runs on them and its argmax (first max wins)
 * is the expert; that expert network alone gives logits and *pred. All experts have
 * the same n_classes; gate and experts take the features as input_len. */
#define BN_MOE_MAGIC 0x424E4D45u  /* "BNME" */
typedef struct {
    uint32_t magic;                  /* BN_MOE_MAGIC */
    uint32_t moe_id;                 /* fingerprint of the networks' model_ids */
    const bn_model *trunk;           /* may be NULL */
    const bn_model *gate;
    uint16_t n_experts;
    const bn_model *const *experts;  /* n_experts networks */
} bn_moe;

/* Scratch bytes of bn_run_moe, 0 if any of its networks is invalid (call it once: it
 * validates every network in full): 5 bytes per trunk output and 4 per expert (rounded
 * up to 4), plus the largest network's scratch (shared, they run in turn). */
size_t bn_moe_scratch_bytes(const bn_moe *m);
/* One image; *expert receives the chosen expert (the gate's argmax). scratch int32
 * aligned, >= bn_moe_scratch_bytes(m). Checks how the networks fit together on every
 * call; each network's own checks run in bn_run_network, for the networks it runs. */
bn_status bn_run_moe(const bn_moe *m, const int8_t *input, size_t input_len,
                     int32_t *logits, size_t logits_len, uint16_t *pred, uint16_t *expert,
                     void *scratch, size_t scratch_bytes);

#ifdef __cplusplus
}
#endif

#endif /* BITNET_H */
