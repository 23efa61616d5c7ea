/*
 * NEON (aarch64 and armv7): pack 8 codes per step. Each plane's bit of the
 * 8 codes is narrowed to a byte, shifted to its column position and summed
 * across lanes into one plane byte.
 */
#include "../internal.h"

#ifdef RBE_HAVE_NEON
#include <arm_neon.h>
#include <string.h>

static uint8_t sum_lanes(uint8x8_t v)
{
#if defined(__aarch64__)
    return vaddv_u8(v);
#else
    v = vpadd_u8(v, v);
    v = vpadd_u8(v, v);
    v = vpadd_u8(v, v);
    return vget_lane_u8(v, 0);
#endif
}

static void encode_block8(const uint16_t *codes, unsigned bits, uint8_t *const *plane_rows,
                          size_t byte_offset)
{
    static const int8_t positions[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    const int8x8_t to_column = vld1_s8(positions);
    const uint16x8_t one = vdupq_n_u16(1);
    uint16x8_t v = vld1q_u16(codes);

    for (unsigned p = 0; p < bits; p++) {
        int16x8_t down = vdupq_n_s16((int16_t)-(int)(bits - 1 - p));
        uint8x8_t bit = vmovn_u16(vandq_u16(vshlq_u16(v, down), one));
        plane_rows[p][byte_offset] = sum_lanes(vshl_u8(bit, to_column));
    }
}

void rbe_encode_row_neon(const uint16_t *codes, size_t cols, unsigned bits,
                         uint8_t *const *plane_rows)
{
    size_t c = 0;

    for (; c + 8 <= cols; c += 8) {
        encode_block8(codes + c, bits, plane_rows, c / 8);
    }

    if (c < cols) {
        uint16_t tail[8] = {0};
        memcpy(tail, codes + c, (cols - c) * sizeof(uint16_t));
        encode_block8(tail, bits, plane_rows, c / 8);
    }
}
#else
typedef int rbe_encode_neon_unused;
#endif
