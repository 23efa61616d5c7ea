/* Scalar reference: refine a decoded buffer by one plane. */
#include <math.h>

#include "../internal.h"

void rbe_refine_f32_scalar(const uint16_t *bit, size_t n, float scale, float delta_set,
                           float delta_clear, float *inout)
{
    for (size_t i = 0; i < n; i++) {
        /* inout holds fl(scale * d) for an integer |d| < 2^16, so the
         * quotient is within 2^-7 of d and rounding returns d exactly. */
        float centered = rintf(inout[i] / scale);
        float delta = bit[i] ? delta_set : delta_clear;
        inout[i] = (centered + delta) * scale;
    }
}
