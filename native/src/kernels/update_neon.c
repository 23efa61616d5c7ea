/*
 * NEON (aarch64) upper-bitplane update, 4 weights per step; see
 * update_scalar.c. armv7 runs the scalar kernel: it lacks a vector floor,
 * and its NEON flushes subnormals, so it could not match the reference.
 */
#include "../internal.h"

#if defined(RBE_HAVE_NEON) && defined(__aarch64__)
#include <arm_neon.h>

static const uint32_t kLaneOffsets[4] = {0, 1, 2, 3};

static float32x4_t uniform4(uint32_t key, uint32_t first_index)
{
    uint32x4_t x = vaddq_u32(vdupq_n_u32(first_index), vld1q_u32(kLaneOffsets));
    x = veorq_u32(x, vdupq_n_u32(key));
    x = veorq_u32(x, vshrq_n_u32(x, 16));
    x = vmulq_u32(x, vdupq_n_u32(0x85ebca6bu));
    x = veorq_u32(x, vshrq_n_u32(x, 13));
    x = vmulq_u32(x, vdupq_n_u32(0xc2b2ae35u));
    x = veorq_u32(x, vshrq_n_u32(x, 16));
    float32x4_t bits24 = vcvtq_f32_u32(vshrq_n_u32(x, 8));
    return vmulq_f32(bits24, vdupq_n_f32(1.0f / 16777216.0f));
}

static int32x4_t sign_steps(float32x4_t delta, float32x4_t uniform)
{
    float32x4_t chance = vminq_f32(vabsq_f32(delta), vdupq_n_f32(1.0f));
    uint32x4_t moves = vcltq_f32(uniform, chance);
    uint32x4_t positive = vcgtq_f32(delta, vdupq_n_f32(0.0f));
    int32x4_t direction = vbslq_s32(positive, vdupq_n_s32(1), vdupq_n_s32(-1));
    return vandq_s32(vreinterpretq_s32_u32(moves), direction);
}

static int32x4_t accumulate_steps(float32x4_t delta, float32x4_t uniform, int32x4_t *accum)
{
    float32x4_t scaled = vmulq_f32(delta, vdupq_n_f32((float)RBE_ACCUM_ONE));
    scaled = vminq_f32(vmaxq_f32(scaled, vdupq_n_f32(-RBE_ACCUM_LIMIT)),
                       vdupq_n_f32(RBE_ACCUM_LIMIT));
    int32x4_t rounded = vcvtq_s32_f32(vrndmq_f32(vaddq_f32(scaled, uniform)));
    int32x4_t total = vaddq_s32(*accum, rounded);

    /* Division by 128 truncating toward zero, as C's integer division does. */
    int32x4_t bias = vandq_s32(vshrq_n_s32(total, 31), vdupq_n_s32(127));
    int32x4_t steps = vshrq_n_s32(vaddq_s32(total, bias), 7);
    *accum = vsubq_s32(total, vshlq_n_s32(steps, 7));
    return steps;
}

void rbe_update_upper_neon(const rbe_update_segment *segment, uint16_t *upper,
                           const float *grad, int8_t *accum, size_t n)
{
    const float32x4_t factor = vdupq_n_f32(segment->factor);
    const int32x4_t max_upper = vdupq_n_s32((int32_t)segment->max_upper);
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {
        float32x4_t uniform = uniform4(segment->key, segment->first_index + (uint32_t)i);
        float32x4_t delta = vnegq_f32(vmulq_f32(vld1q_f32(grad + i), factor));
        int32x4_t steps;

        if (segment->mode == RBE_UPDATE_SIGN) {
            steps = sign_steps(delta, uniform);
        } else {
            int32x4_t state = {accum[i], accum[i + 1], accum[i + 2], accum[i + 3]};
            steps = accumulate_steps(delta, uniform, &state);
            for (int lane = 0; lane < 4; lane++) {
                accum[i + lane] = (int8_t)state[lane];
            }
        }

        int32x4_t current = vreinterpretq_s32_u32(vmovl_u16(vld1_u16(upper + i)));
        int32x4_t moved = vminq_s32(vmaxq_s32(vaddq_s32(current, steps), vdupq_n_s32(0)),
                                    max_upper);
        vst1_u16(upper + i, vmovn_u32(vreinterpretq_u32_s32(moved)));
    }

    rbe_update_segment rest = *segment;
    rest.first_index += (uint32_t)i;
    rbe_update_upper_scalar(&rest, upper + i, grad + i, accum ? accum + i : accum, n - i);
}
#else
typedef int rbe_update_neon_unused;
#endif
