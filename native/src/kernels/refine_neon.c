/*
 * NEON: refine a decoded buffer by one plane, 4 floats per step. armv7 has
 * no vector division or round-to-nearest instruction, so it multiplies by a
 * Newton-refined reciprocal (relative error near 1e-7, far below the 2^-18
 * that recovering a 17-bit integer tolerates) and rounds by adding and
 * subtracting 1.5 * 2^23, which rounds to nearest even for |x| < 2^22.
 * A scale of 2^125 or more has a reciprocal that armv7 NEON flushes to zero,
 * so such groups take the scalar path, which recovers the same integers.
 */
#include "../internal.h"

#ifdef RBE_HAVE_NEON
#include <arm_neon.h>

/* Returns rint(value / scale * 2), the doubled centered code. */
static float32x4_t recover_doubled(float32x4_t value, float32x4_t scale)
{
#if defined(__aarch64__)
    return vrndnq_f32(vmulq_n_f32(vdivq_f32(value, scale), 2.0f));
#else
    const float32x4_t magic = vdupq_n_f32(12582912.0f);
    float32x4_t reciprocal = vrecpeq_f32(scale);
    reciprocal = vmulq_f32(reciprocal, vrecpsq_f32(scale, reciprocal));
    reciprocal = vmulq_f32(reciprocal, vrecpsq_f32(scale, reciprocal));
    float32x4_t doubled = vmulq_n_f32(vmulq_f32(value, reciprocal), 2.0f);
    return vsubq_f32(vaddq_f32(doubled, magic), magic);
#endif
}

void rbe_refine_f32_neon(const uint16_t *bit, size_t n, float scale, float delta_set,
                         float delta_clear, float *inout)
{
    const float32x4_t scale_v = vdupq_n_f32(scale);
    const float32x4_t set_v = vdupq_n_f32(delta_set);
    const float32x4_t clear_v = vdupq_n_f32(delta_clear);
    size_t i = 0;

#if !defined(__aarch64__)
    if (scale >= 0x1p125f) {
        rbe_refine_f32_scalar(bit, n, scale, delta_set, delta_clear, inout);
        return;
    }
#endif

    for (; i + 4 <= n; i += 4) {
        uint32x4_t bits = vmovl_u16(vld1_u16(bit + i));
        uint32x4_t is_set = vcgtq_u32(bits, vdupq_n_u32(0));
        float32x4_t delta = vbslq_f32(is_set, set_v, clear_v);

        float32x4_t doubled = recover_doubled(vld1q_f32(inout + i), scale_v);
        float32x4_t centered = vmulq_n_f32(vaddq_f32(doubled, delta), 0.5f);
        vst1q_f32(inout + i, vmulq_f32(centered, scale_v));
    }

    rbe_refine_f32_scalar(bit + i, n - i, scale, delta_set, delta_clear, inout + i);
}
#else
typedef int rbe_refine_neon_unused;
#endif
