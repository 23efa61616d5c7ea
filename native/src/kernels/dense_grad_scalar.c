/*
 * Scalar reference of the weight-gradient tile (see rbe_dense_grad_fn in
 * internal.h): every element sums its batch products in increasing m, then
 * takes one multiplication by grad_scale.
 */
#include <string.h>

#include "../internal.h"

void rbe_dense_grad_scalar(const rbe_dense_grad_args *args, size_t row_begin, size_t row_count,
                           float *tile)
{
    size_t cols = args->cols;

    for (size_t r = 0; r < row_count; r++) {
        float *out = tile + r * cols;

        memset(out, 0, cols * sizeof(float));
        for (size_t m = 0; m < args->batch; m++) {
            float factor = args->dy[m * args->rows + row_begin + r];
            const float *x = args->x + m * cols;

            for (size_t k = 0; k < cols; k++) {
                float product = factor * x[k];
                out[k] = out[k] + product;
            }
        }
        for (size_t k = 0; k < cols; k++) {
            out[k] = args->grad_scale * out[k];
        }
    }
}
