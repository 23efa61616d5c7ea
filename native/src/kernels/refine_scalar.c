/* Scalar reference: refine a decoded buffer by one plane. */
#include <math.h>

#include "../internal.h"

void rbe_refine_f32_scalar(const uint16_t *bit, size_t n, float scale, float delta_set,
                           float delta_clear, float *inout)
{
    for (size_t i = 0; i < n; i++) {
        /* inout contains fl(scale * d) for a half integer |d| < 2^16, so the
         * doubled quotient is within 2^-6 of the integer 2d and rounding
         * returns it exactly. */
        float doubled = rintf(inout[i] / scale * 2.0f);
        float delta = bit[i] ? delta_set : delta_clear;
        inout[i] = ((doubled + delta) * 0.5f) * scale;
    }
}
