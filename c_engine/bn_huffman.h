/*
 * bn_huffman.h - canonical Huffman decoding of a layer's weight fields (C99).
 *
 * Not part of the inference engine (bn_run_network reads packed words); this is the
 * decoder that chapter 27 measures, for weights stored entropy-coded in flash and
 * decoded on the fly. The encoder is bitnetlib/deploy/huffman.py; the test
 * tests/test_huffman.py holds the two equal on real models.
 *
 * FORMAT
 *   symbols  uint8_t field values of the layer's weight type (bitnet.h, WEIGHT
 *            PACKING: 0 .. 2^bits - 1; Ternary: the trit 0..2).
 *   table    count[l - 1]: how many codes have length l (l = 1..max_len,
 *            max_len <= BN_HUFF_MAX_LEN); symbol[]: the coded symbols in canonical
 *            order (by code length, then value), sum(count) of them. Codes are
 *            canonical: the first code of length l is (first code of length l-1 +
 *            count[l - 2]) << 1, starting with 0 at length 1.
 *   stream   the codes one after the other, MSB first, in uint32_t words filled from
 *            the top bit (the words are values: endianness plays no part); the
 *            weights in row order (out rows of in weights).
 *   A layer with one symbol has the 1-bit code 0 (count = {1}, max_len = 1).
 *
 * USE
 *   bn_huff_table_check once per table (in a test or at start-up); then
 *   bn_huff_reader_init on the layer's stream and bn_huff_decode as many times as
 *   wanted: each call continues where the previous one stopped, so a row at a time
 *   can be decoded into a row buffer while the kernel runs. The reader is the only
 *   state; the caller owns it and every buffer. Nothing allocates memory.
 *
 * COST (RV32EC, no multiplication): one pass of the inner loop per code bit, a
 * table load per bit; chapter 27 measures cycles per weight in the emulator.
 */
#ifndef BN_HUFFMAN_H
#define BN_HUFFMAN_H

#include "bitnet.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BN_HUFF_MAX_LEN 15

typedef struct {
    const uint16_t *count;   /* count[l - 1]: codes of length l, l = 1..max_len */
    const uint8_t *symbol;   /* sum(count) symbols in canonical order */
    uint8_t max_len;         /* longest code length, 1..BN_HUFF_MAX_LEN */
} bn_huff_table;

typedef struct {
    const uint32_t *next;    /* next word of the stream */
    const uint32_t *end;     /* one past its last word */
    uint32_t bits;           /* the current word's unread bits, left-aligned */
    uint32_t avail;          /* how many unread bits `bits` holds (0..32) */
} bn_huff_reader;

/* BN_OK when the table can be decoded: no NULL, 1 <= max_len <= BN_HUFF_MAX_LEN,
 * sum(count) == n_symbols >= 1, codes not over-subscribed (Kraft sum <= 1); else
 * BN_ERR_NULL / BN_ERR_SHAPE (sizes) / BN_ERR_CORRUPT (over-subscribed). */
bn_status bn_huff_table_check(const bn_huff_table *t, size_t n_symbols);

/* Start reading a stream of n_words words (n_words 0 is an empty stream). */
bn_status bn_huff_reader_init(bn_huff_reader *r, const uint32_t *words, size_t n_words);

/* Decode the next n symbols into out[0..n-1]. BN_ERR_SHAPE: the stream ended
 * first; BN_ERR_CORRUPT: bits that match no code (an incomplete table) or
 * max_len out of range. On an error out is partly written and the reader stands
 * after the last bit read. The table is not checked here (bn_huff_table_check):
 * a table whose symbol array holds sum(count) entries is never read outside it. */
bn_status bn_huff_decode(const bn_huff_table *t, bn_huff_reader *r, uint8_t *out, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* BN_HUFFMAN_H */
