/*
 * bn_huffman.c - canonical Huffman decoder for weight fields; contract in bn_huffman.h.
 * Bit at a time (no lookup table: nothing beyond the coded table in flash, no
 * SRAM but the reader), no multiplication, no division.
 */
#include "bn_huffman.h"

/* -DBN_HUFF_HOT=BN_RAMFUNC places the decoder in SRAM (firmware; see bitnet.h BN_HOT) */
#ifndef BN_HUFF_HOT
#define BN_HUFF_HOT
#endif

bn_status bn_huff_table_check(const bn_huff_table *t, size_t n_symbols)
{
    uint32_t left = 1, total = 0;   /* codes still free at the current length */
    size_t l;
    if (!t || !t->count || !t->symbol)
        return BN_ERR_NULL;
    if (t->max_len < 1 || t->max_len > BN_HUFF_MAX_LEN)
        return BN_ERR_SHAPE;
    for (l = 0; l < t->max_len; l++) {
        left <<= 1;
        if (t->count[l] > left)
            return BN_ERR_CORRUPT;
        left -= t->count[l];
        total += t->count[l];
    }
    return (total == n_symbols && total >= 1) ? BN_OK : BN_ERR_SHAPE;
}

bn_status bn_huff_reader_init(bn_huff_reader *r, const uint32_t *words, size_t n_words)
{
    if (!r || (!words && n_words))
        return BN_ERR_NULL;
    r->next = words;
    r->end = words + n_words;
    r->bits = 0;
    r->avail = 0;
    return BN_OK;
}

/* the reader's state back into *r, then the status */
static bn_status stop(bn_huff_reader *r, const uint32_t *next, uint32_t bits, uint32_t avail,
                      bn_status status)
{
    r->next = next;
    r->bits = bits;
    r->avail = avail;
    return status;
}

BN_HUFF_HOT bn_status bn_huff_decode(const bn_huff_table *t, bn_huff_reader *r, uint8_t *out,
                                     size_t n)
{
    const uint16_t *count, *count_end;
    const uint8_t *symbol;
    const uint32_t *next;
    uint8_t *out_end = out + n;
    uint32_t bits, avail;
    if (!t || !r || (!out && n) || !t->count || !t->symbol)
        return BN_ERR_NULL;
    if (t->max_len < 1 || t->max_len > BN_HUFF_MAX_LEN)
        return BN_ERR_CORRUPT;
    count_end = t->count + t->max_len;
    symbol = t->symbol;
    next = r->next;
    bits = r->bits;
    avail = r->avail;
    while (out != out_end) {
        uint32_t code = 0, first = 0, index = 0, c;
        count = t->count;
        for (;;) {               /* one code bit per pass */
            if (count == count_end)
                return stop(r, next, bits, avail, BN_ERR_CORRUPT);
            if (avail == 0) {
                if (next == r->end)
                    return stop(r, next, bits, avail, BN_ERR_SHAPE);
                bits = *next++;
                avail = 32;
            }
            code |= bits >> 31;
            bits <<= 1;
            avail--;
            c = *count++;
            if (code - first < c)
                break;
            index += c;
            first = (first + c) << 1;
            code <<= 1;
        }
        *out++ = symbol[index + code - first];
    }
    return stop(r, next, bits, avail, BN_OK);
}
