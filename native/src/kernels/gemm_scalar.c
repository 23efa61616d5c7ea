/*
 * Scalar reference of the bit-serial product (P = 1) and the entry point of
 * both scalar paths. It follows the accumulation order that rbe_gemm_f32
 * documents element by element, so every SIMD kernel must match it bit for
 * bit. It also serves group sizes that are not a multiple of 16, which the
 * SIMD kernels do not handle.
 */
#include "../internal.h"

static void accumulate_group(const rbe_gemm_args *args, size_t row, const float *x,
                             size_t first_col, float *lanes, float *x_lanes)
{
    const rbe_layout *layout = args->layout;
    size_t end_col = first_col + layout->group_size;

    for (size_t j = 0; j < RBE_GEMM_LANES; j++) {
        lanes[j] = 0.0f;
        x_lanes[j] = 0.0f;
    }

    for (size_t k = first_col; k < end_col; k++) {
        size_t j = (k - first_col) % RBE_GEMM_LANES;
        float value = x[k];
        x_lanes[j] += value;

        for (unsigned p = 0; p < args->planes_used; p++) {
            const uint8_t *plane_row = args->planes[p] + row * layout->row_stride;
            if ((plane_row[k / 8] >> (k % 8)) & 1u) {
                float weight = (float)(1u << (layout->bits - 1 - p));
                lanes[j] += value * weight;
            }
        }
    }
}

void rbe_gemm_rows_scalar(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    const rbe_layout *layout = args->layout;
    float center_offset = rbe_center_offset(layout->bits, args->planes_used);

    if (rbe_gemm_uses_decode(layout->bits, args->planes_used)) {
        rbe_gemm_decode_rows_scalar(args, row_begin, row_end);
        return;
    }

    for (size_t row = row_begin; row < row_end; row++) {
        for (size_t m = 0; m < args->batch; m++) {
            const float *x = args->x + m * layout->cols;
            float total = 0.0f;

            for (size_t g = 0; g < layout->groups; g++) {
                float lanes[RBE_GEMM_LANES];
                float x_lanes[RBE_GEMM_LANES];
                size_t param = row * layout->groups + g;

                accumulate_group(args, row, x, g * layout->group_size, lanes, x_lanes);
                total = rbe_gemm_add_group(total, lanes, x_lanes, args->scale[param], center_offset,
                                           args->zero[param]);
            }
            args->y[m * layout->rows + row] = total;
        }
    }
}
