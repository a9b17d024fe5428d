/*
 * huffbench.c - a CH32V003 image that only decodes Huffman-coded weights
 * (c_engine/bn_huffman.h), for counting the decoder's cycles in the emulator.
 *
 * Built by bitnetlib/deploy/huffbench.py (not by the Makefile: no model, no engine)
 * with the bench runtime (bench_runtime.h: the host I/O, bn_fw_sync) and a generated
 * data header BN_BENCH_DATA that defines bn_hb_layers[BN_HB_LAYERS] (each layer's
 * table and stream, in flash) and BN_HB_ROW_MAX. The loop decodes one layer per
 * round, a row at a time into a row buffer in SRAM (what decoding on the fly next to
 * a row kernel would do), then stops at bn_fw_sync(), where the emulator reads
 * bn_fw_io.status; with bn_fw_io.flags & 1 each decoded row is also copied to
 * bn_fw_trace (emulator-only memory) so the host can compare it with the encoder's
 * input.
 */
#include "bench_runtime.h"
#include "bn_huffman.h"

typedef struct {
    bn_huff_table table;
    const uint32_t *words;
    uint32_t n_words;
    uint16_t rows, cols;
} bn_hb_layer;

#include BN_BENCH_DATA

BN_BENCH_IO_LAYOUT(BN_HB_TRACE / 4);
__attribute__((section(".trace"))) uint8_t bn_fw_trace[BN_HB_TRACE];
static uint8_t row[BN_HB_ROW_MAX];

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
