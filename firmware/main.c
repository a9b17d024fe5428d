/*
 * main.c - CH32V003 inference firmware: the c_engine sources and one exported
 * model header (both compiled from where they live), a loop that runs one image per
 * round.
 *
 * The write-up's demo runs test images and reports prediction and SysTick time over
 * the debug printf. Here the link to the outside is one hook, bn_fw_sync(): on the
 * board it would be the debug-printf / SysTick point; in the instruction-set
 * simulator (bitnetlib/deploy/emulator.py) execution stops at its address, the harness reads
 * the previous image's result from bn_fw_io, writes the next image into
 * bn_fw_io.input and resumes. With bn_fw_io.flags & 1 every FC layer's
 * accumulators are written to bn_fw_trace (emulator-only memory, not SRAM).
 *
 * Build-time constants (the Makefile passes them; bitnetlib/deploy/firmware.py takes
 * the buffer sizes from the engine's bn_scratch_bytes / bn_trace_len):
 * BN_MODEL_HEADER, BN_MODEL_SYM, BN_FW_INPUT, BN_FW_CLASSES, BN_FW_SCRATCH,
 * BN_FW_TRACE, BN_FW_INPUT_FLASH (1: the image in flash, 0: in bn_fw_io).
 *
 * The I/O layout is declared here once: bn_fw_io_layout records its offsets in a
 * section that is not loaded onto the chip (ch32v003.ld), and the simulator reads
 * them from the ELF (bitnetlib/deploy/emulator.py).
 */
#include "bitnet.h"
#include BN_MODEL_HEADER

#ifndef BN_FW_MOE
#define BN_FW_MOE 0   /* 1: BN_MODEL_SYM is a bn_moe (mixture of experts, bn_moe.c) */
#endif

#if BN_FW_INPUT_FLASH
/* The test image lives in flash, like the write-up's demo (its test images are
 * const arrays): SRAM holds only the engine's buffers. It is defined in startup.S,
 * so the compiler cannot assume its contents; the simulator rewrites it per round
 * (on the board: a flash page, or build with INPUT_MEM=ram). */
extern const int8_t bn_fw_input[BN_FW_INPUT];
#endif

typedef struct {
#if !BN_FW_INPUT_FLASH
    int8_t input[BN_FW_INPUT];       /* written by the host before each round */
#endif
    uint32_t flags;                  /* bit 0: write the trace */
    int32_t status;                  /* bn_status of the last image */
    uint32_t pred;                   /* argmax of the last image */
    uint32_t rounds;                 /* images run so far */
    int32_t logits[BN_FW_CLASSES];
} bn_fw_io_t;

bn_fw_io_t bn_fw_io;

/* byte offsets in bn_fw_io for the host; input: BN_FW_IO_IN_FLASH when the image is
 * bn_fw_input in flash. Order: see BN_FW_LAYOUT_FIELDS in emulator.py. */
#define BN_FW_IO_IN_FLASH 0xFFFFFFFFu
__attribute__((section(".bn_fw_layout"), used)) const uint32_t bn_fw_io_layout[] = {
#if BN_FW_INPUT_FLASH
    BN_FW_IO_IN_FLASH,
#else
    offsetof(bn_fw_io_t, input),
#endif
    offsetof(bn_fw_io_t, flags), offsetof(bn_fw_io_t, status), offsetof(bn_fw_io_t, pred),
    offsetof(bn_fw_io_t, rounds), offsetof(bn_fw_io_t, logits), BN_FW_CLASSES, BN_FW_TRACE,
    BN_FW_INPUT};
static int32_t scratch[(BN_FW_SCRATCH + 3) / 4];
__attribute__((section(".trace"))) int32_t bn_fw_trace[BN_FW_TRACE > 0 ? BN_FW_TRACE : 1];
#if BN_FW_MOE
uint32_t bn_fw_expert;    /* the expert the gate chose for the last image */
#endif

/* GCC may emit calls to memset / memcpy even with -ffreestanding (zeroing a struct,
 * copying one): there is no libc here, so the firmware provides them. */
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

/* the host link: on the board, debug printf of the last result and the SysTick
 * reading; in the simulator, the address where the harness takes over */
__attribute__((noinline)) void bn_fw_sync(void)
{
    __asm__ volatile("" ::: "memory");
}

int main(void)
{
    for (;;) {
        uint16_t pred = 0;
        int trace;
        bn_fw_sync();
        trace = (int)(bn_fw_io.flags & 1u);
#if BN_FW_MOE   /* no trace: the host checks logits, prediction and expert */
        {
            uint16_t expert = 0;
            (void)trace;
            bn_fw_io.status = bn_run_moe(&BN_MODEL_SYM,
#if BN_FW_INPUT_FLASH
                                         bn_fw_input,
#else
                                         bn_fw_io.input,
#endif
                                         BN_FW_INPUT, bn_fw_io.logits, BN_FW_CLASSES, &pred,
                                         &expert, scratch, sizeof scratch);
            bn_fw_expert = expert;
        }
#else
        bn_fw_io.status = bn_run_network(&BN_MODEL_SYM,
#if BN_FW_INPUT_FLASH
                                         bn_fw_input,
#else
                                         bn_fw_io.input,
#endif
                                         BN_FW_INPUT,
                                         bn_fw_io.logits, BN_FW_CLASSES, &pred,
                                         scratch, sizeof scratch,
                                         trace ? bn_fw_trace : NULL,
                                         trace ? (size_t)BN_FW_TRACE : 0);
#endif
        bn_fw_io.pred = pred;
        bn_fw_io.rounds++;
    }
}
