/*
 * Scalar reference of the upper-bitplane update. Every SIMD kernel matches
 * it bit for bit: the float steps are the same IEEE operations in the same
 * order, and the random numbers come from the same integer hash.
 */
#include <math.h>

#include "../internal.h"

static int32_t floor_to_int(float value)
{
    return (int32_t)floorf(value);
}

void rbe_update_upper_scalar(const rbe_update_segment *segment, uint16_t *upper,
                             const float *grad, int8_t *accum, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t index = segment->first_index + (uint32_t)i;
        float uniform = rbe_uniform(segment->key, index);
        float delta = -(grad[i] * segment->factor);
        int32_t steps;

        if (segment->mode == RBE_UPDATE_SIGN) {
            float chance = fminf(fabsf(delta), 1.0f);
            steps = uniform < chance ? (delta > 0.0f ? 1 : -1) : 0;
        } else {
            /* Fixed point with RBE_ACCUM_ONE units per upper step; stochastic
             * rounding keeps small gradients unbiased. */
            float scaled = fminf(fmaxf(delta * (float)RBE_ACCUM_ONE, -RBE_ACCUM_LIMIT),
                                 RBE_ACCUM_LIMIT);
            int32_t total = (int32_t)accum[i] + floor_to_int(scaled + uniform);
            steps = total / RBE_ACCUM_ONE;
            accum[i] = (int8_t)(total - steps * RBE_ACCUM_ONE);
        }

        int32_t moved = (int32_t)upper[i] + steps;
        moved = moved < 0 ? 0 : moved;
        moved = moved > (int32_t)segment->max_upper ? (int32_t)segment->max_upper : moved;
        upper[i] = (uint16_t)moved;
    }
}
