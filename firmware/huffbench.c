/*
 * huffbench.c - a CH32V003 image that only decodes Huffman-coded weights
 * (c_engine/bn_huffman.h), for counting the decoder's cycles in the emulator.
 *
 * Built by bitnetlib/deploy/huffbench.py (not by the Makefile: no model, no engine)
 * with startup.S and ch32v003.ld, and a generated data header BN_HB_DATA that
 * defines bn_hb_layers[BN_HB_LAYERS] (each layer's table and stream, in flash) and
 * BN_HB_ROW_MAX. The loop decodes one layer per round, a row at a time into a row
 * buffer in SRAM (what decoding on the fly next to a row kernel would do), then
 * stops at bn_fw_sync(), where the emulator reads bn_fw_io.status; with
 * bn_fw_io.flags & 1 each decoded row is also copied to bn_fw_trace
 * (emulator-only memory) so the host can compare it with the encoder's input.
 */
#include "bn_huffman.h"

typedef struct {
    bn_huff_table table;
    const uint32_t *words;
    uint32_t n_words;
    uint16_t rows, cols;
} bn_hb_layer;

#include BN_HB_DATA

typedef struct {
    int8_t input[4];         /* unused: the emulator's I/O layout wants the field */
    uint32_t flags;          /* bit 0: copy the decoded rows to bn_fw_trace */
    int32_t status;          /* bn_status of the last layer */
    uint32_t pred;           /* the layer decoded last */
    uint32_t rounds;         /* layers decoded so far */
    int32_t logits[1];
} bn_fw_io_t;

bn_fw_io_t bn_fw_io;
__attribute__((section(".bn_fw_layout"), used)) const uint32_t bn_fw_io_layout[] = {
    offsetof(bn_fw_io_t, input), offsetof(bn_fw_io_t, flags), offsetof(bn_fw_io_t, status),
    offsetof(bn_fw_io_t, pred), offsetof(bn_fw_io_t, rounds), offsetof(bn_fw_io_t, logits),
    1, BN_HB_TRACE / 4, 4};
__attribute__((section(".trace"))) uint8_t bn_fw_trace[BN_HB_TRACE];
static uint8_t row[BN_HB_ROW_MAX];

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);

void *memset(void *d, int c, size_t n)
{
    unsigned char *p = d;
    while (n--)
        *p++ = (unsigned char)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--)
        *p++ = *q++;
    return d;
}

__attribute__((noinline)) void bn_fw_sync(void)
{
    __asm__ volatile("" ::: "memory");
}

static bn_status decode_layer(const bn_hb_layer *l)
{
    bn_huff_reader r;
    uint8_t *trace = bn_fw_trace;
    bn_status st = bn_huff_reader_init(&r, l->words, l->n_words);
    uint32_t i, j;
    for (i = 0; i < l->rows && st == BN_OK; i++) {
        st = bn_huff_decode(&l->table, &r, row, l->cols);
        if (bn_fw_io.flags & 1u)
            for (j = 0; j < l->cols; j++)
                *trace++ = row[j];
    }
    return st;
}

int main(void)
{
    uint32_t k;
    bn_fw_sync();
    for (;;) {
        for (k = 0; k < BN_HB_LAYERS; k++) {
            bn_fw_io.status = decode_layer(&bn_hb_layers[k]);
            bn_fw_io.pred = k;
            bn_fw_io.rounds++;
            bn_fw_sync();
        }
    }
}
