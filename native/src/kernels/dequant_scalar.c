/* Scalar reference: codes to float32 and to signed 8-bit codes. */
#include "../internal.h"

void rbe_dequant_f32_scalar(const uint16_t *codes, size_t n, float scale, float zero,
                            float *out)
{
    for (size_t i = 0; i < n; i++) {
        float centered = (float)codes[i] - zero;
        out[i] = centered * scale;
    }
}

void rbe_dequant_i8_scalar(const uint16_t *codes, size_t n, unsigned bits, int8_t *out)
{
    int offset = 1 << (bits - 1);

    for (size_t i = 0; i < n; i++) {
        out[i] = (int8_t)((int)codes[i] - offset);
    }
}
