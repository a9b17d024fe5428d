/*
 * bn_conv.h - what the network runner (bn_network.c) takes from bn_conv.c beside the
 * public kernels of bitnet.h: the image's centre, found once per image instead of
 * once per channel.
 */
#ifndef BN_CONV_H
#define BN_CONV_H

#include "bitnet.h"

/* The weight types conv layers may have (bit t: type id t; default every type the
 * build has): the firmware passes its conv layers' types, so that a CNN whose conv
 * weights are all 8-bit flat links no generic weight decoder (flash). A conv layer
 * of another type is BN_ERR_WTYPE. */
#ifndef BN_CONV_WTYPES
#define BN_CONV_WTYPES BN_WTYPES
#endif
#define BN_CONV_HAS_WTYPE(t) (((BN_CONV_WTYPES & BN_WTYPES) >> (t)) & 1u)

/* The centre of an int8 image for bn_conv_map: its smallest pixel with
 * BN_CONV_FAST (background pixels become zero inputs), else 0. */
int32_t bn_conv_centre(const int8_t *in, size_t n);
/* uint32 accumulators bn_conv_map needs for an input side (3 rows of side + 2, rounded
 * up to even: they are set two at a time; none for the plain kernels, BN_CONV_FAST=0):
 * the runner's stack frame holds them. */
#if !defined(BN_CONV_FAST) || BN_CONV_FAST
#define BN_CONV_RING(side) ((3u * ((side) + 2u) + 1u) & ~1u)
#else
#define BN_CONV_RING(side) 0u
#endif
/* One conv layer of one channel: bn_conv3x3_i8 with the centre c given (in: the int8
 * image, or a map with c = 0; any c gives the same integers); ring: room for
 * BN_CONV_RING(side) accumulators. The arguments are the runner's, checked by its
 * check_model (bn_network.c): not checked again here (always BN_OK). */
bn_status bn_conv_map(const int8_t *in, int32_t c, size_t side, const int16_t *w,
                      uint8_t shift, uint8_t pool, int8_t *out, uint32_t *ring);

#endif
