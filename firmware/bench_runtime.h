/*
 * bench_runtime.h - the host link the bench images share (huffbench.c,
 * rescalebench.c): images with no model and no engine, built by
 * bitnetlib/deploy/benchbuild.py with startup.S and ch32v003.ld, each round measured
 * in the emulator (bitnetlib/deploy/emulator.py). Each bench includes it once: it
 * defines bn_fw_io, bn_fw_sync, memset and memcpy in the bench's own translation unit,
 * so the compiler sees bn_fw_sync's (empty) register use, as in main.c (with it in
 * a file of its own, a huffbench round took a few more cycles).
 *
 * The emulator reads bn_fw_io at the offsets in bn_fw_io_layout, as for main.c (the
 * inference firmware keeps its own copy: it decides every stored firmware run, the
 * benches decide none). A bench declares its layout once with BN_BENCH_IO_LAYOUT,
 * then per round sets status / pred, counts rounds and stops at bn_fw_sync(); with
 * bn_fw_io.flags & 1 it copies the round's result to bn_fw_trace (emulator-only
 * memory) for the host to check.
 */
#ifndef BENCH_RUNTIME_H
#define BENCH_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int8_t input[4];         /* unused: the emulator's I/O layout wants the field */
    uint32_t flags;          /* bit 0: copy the round's result to bn_fw_trace */
    int32_t status;          /* bn_status of the last round */
    uint32_t pred;           /* the round run last */
    uint32_t rounds;         /* rounds run so far */
    int32_t logits[1];
} bn_fw_io_t;

bn_fw_io_t bn_fw_io;

/* bn_fw_io's offsets for the host, in the order of BN_FW_LAYOUT_FIELDS
 * (emulator.py); trace_words: the 32-bit words of the bench's bn_fw_trace */
#define BN_BENCH_IO_LAYOUT(trace_words)                                                \
    __attribute__((section(".bn_fw_layout"), used)) const uint32_t bn_fw_io_layout[] = { \
        offsetof(bn_fw_io_t, input), offsetof(bn_fw_io_t, flags),                      \
        offsetof(bn_fw_io_t, status), offsetof(bn_fw_io_t, pred),                      \
        offsetof(bn_fw_io_t, rounds), offsetof(bn_fw_io_t, logits), 1, (trace_words), 4}

/* GCC may emit calls to memset / memcpy even with -ffreestanding (zeroing a struct,
 * copying one): there is no libc here, so the image provides them (--gc-sections
 * drops them where no call is made). */
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

/* the host link: in the emulator, the address where the harness takes over */
__attribute__((noinline)) void bn_fw_sync(void)
{
    __asm__ volatile("" ::: "memory");
}

#endif
