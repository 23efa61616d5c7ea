/*
 * NEON (aarch64 and armv7): gather the top planes into codes. A plane byte
 * is duplicated across the lanes of its 8 columns, vtst sets a lane to all
 * ones when its bit is set, and the code accumulates as acc = 2 * acc + bit.
 * Codes of up to 8 bits use 8-bit lanes (16 columns per step), wider codes
 * 16-bit lanes (8 columns per step).
 */
#include "../internal.h"

#ifdef RBE_HAVE_NEON
#include <arm_neon.h>

static const uint8_t kSelect8[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                     1, 2, 4, 8, 16, 32, 64, 128};
static const uint16_t kSelect16[8] = {1, 2, 4, 8, 16, 32, 64, 128};

static void unpack_u8_lanes(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                            unsigned planes_used, uint16_t *codes)
{
    const uint8x16_t select = vld1q_u8(kSelect8);
    const int16x8_t shift = vdupq_n_s16((int16_t)(bits - planes_used));
    const uint16x8_t midpoint = vdupq_n_u16(
        (uint16_t)(planes_used < bits ? 1u << (bits - planes_used - 1) : 0u));

    for (size_t byte = 0; byte < nbytes; byte += 2) {
        uint8x16_t acc = vdupq_n_u8(0);

        for (unsigned p = 0; p < planes_used; p++) {
            const uint8_t *src = plane_rows[p] + byte;
            uint8x16_t lanes = vcombine_u8(vdup_n_u8(src[0]), vdup_n_u8(src[1]));
            uint8x16_t set = vtstq_u8(lanes, select);
            acc = vsubq_u8(vaddq_u8(acc, acc), set);
        }

        uint16x8_t low = vmovl_u8(vget_low_u8(acc));
        uint16x8_t high = vmovl_u8(vget_high_u8(acc));
        vst1q_u16(codes + byte * 8, vaddq_u16(vshlq_u16(low, shift), midpoint));
        vst1q_u16(codes + byte * 8 + 8, vaddq_u16(vshlq_u16(high, shift), midpoint));
    }
}

static void unpack_u16_lanes(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                             unsigned planes_used, uint16_t *codes)
{
    const uint16x8_t select = vld1q_u16(kSelect16);
    const int16x8_t shift = vdupq_n_s16((int16_t)(bits - planes_used));
    const uint16x8_t midpoint = vdupq_n_u16(
        (uint16_t)(planes_used < bits ? 1u << (bits - planes_used - 1) : 0u));

    for (size_t byte = 0; byte < nbytes; byte++) {
        uint16x8_t acc = vdupq_n_u16(0);

        for (unsigned p = 0; p < planes_used; p++) {
            uint16x8_t set = vtstq_u16(vdupq_n_u16(plane_rows[p][byte]), select);
            acc = vsubq_u16(vaddq_u16(acc, acc), set);
        }

        vst1q_u16(codes + byte * 8, vaddq_u16(vshlq_u16(acc, shift), midpoint));
    }
}

void rbe_unpack_neon(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                     unsigned planes_used, uint16_t *codes)
{
    if (planes_used <= 8) {
        unpack_u8_lanes(plane_rows, nbytes, bits, planes_used, codes);
    } else {
        unpack_u16_lanes(plane_rows, nbytes, bits, planes_used, codes);
    }
}
#else
typedef int rbe_unpack_neon_unused;
#endif
