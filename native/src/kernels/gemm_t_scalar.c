/*
 * Scalar reference of one tile of the transposed product (see
 * rbe_gemm_t_tile in internal.h). Each dx element adds its products in
 * increasing row order, the order every SIMD kernel reproduces lane by lane.
 */
#include "../internal.h"

void rbe_gemm_t_tile_scalar(const rbe_gemm_t_tile *tile)
{
    for (size_t m = 0; m < tile->batch; m++) {
        const float *dy = tile->dy + m * tile->dy_stride;
        float *dx = tile->dx + m * tile->dx_stride;

        for (size_t n = 0; n < tile->rows; n++) {
            const float *w = tile->w + n * tile->w_stride;
            float factor = dy[n];

            for (size_t k = 0; k < tile->cols; k++) {
                float product = factor * w[k];
                dx[k] = dx[k] + product;
            }
        }
    }
}
