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

/* The centre of an int8 image for bn_conv3x3_i8c: its smallest pixel with
 * BN_CONV_FAST (background pixels become zero inputs), else 0. */
int32_t bn_conv_centre(const int8_t *in, size_t n);
/* bn_conv3x3_i8 with the centre c given (any c gives the same integers). */
bn_status bn_conv3x3_i8c(const int8_t *in, size_t side, const int16_t *w, uint8_t shift,
                         uint8_t pool, int16_t *out, int32_t c);

#endif
