/*
 * NEON (aarch64 and armv7): codes to float32 and to signed 8-bit codes,
 * 8 per step. armv7 NEON flushes subnormals to zero, which cannot change a
 * result here: validated scales are normal and (q - zero) is an integer.
 */
#include "../internal.h"

#ifdef RBE_HAVE_NEON
#include <arm_neon.h>

void rbe_dequant_f32_neon(const uint16_t *codes, size_t n, float scale, float zero,
                          float *out)
{
    const float32x4_t scale_v = vdupq_n_f32(scale);
    const float32x4_t zero_v = vdupq_n_f32(zero);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint16x8_t q = vld1q_u16(codes + i);
        float32x4_t low = vcvtq_f32_u32(vmovl_u16(vget_low_u16(q)));
        float32x4_t high = vcvtq_f32_u32(vmovl_u16(vget_high_u16(q)));
        vst1q_f32(out + i, vmulq_f32(vsubq_f32(low, zero_v), scale_v));
        vst1q_f32(out + i + 4, vmulq_f32(vsubq_f32(high, zero_v), scale_v));
    }

    rbe_dequant_f32_scalar(codes + i, n - i, scale, zero, out + i);
}

void rbe_dequant_i8_neon(const uint16_t *codes, size_t n, unsigned bits, int8_t *out)
{
    const uint16x8_t offset = vdupq_n_u16((uint16_t)(1u << (bits - 1)));
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint16x8_t centered = vsubq_u16(vld1q_u16(codes + i), offset);
        vst1_s8(out + i, vmovn_s16(vreinterpretq_s16_u16(centered)));
    }

    rbe_dequant_i8_scalar(codes + i, n - i, bits, out + i);
}
#else
typedef int rbe_dequant_neon_unused;
#endif
