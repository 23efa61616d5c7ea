/*
 * Scalar reference of the decode path of the product (see
 * rbe_gemm_choose_path). It follows the accumulation order that
 * rbe_gemm_f32 documents element by element: lane j of a group sets
 * lane = fmaf(x, c_P, lane) for its columns in increasing k.
 *
 * C99 (7.12.13.1) defines fmaf as x * y + z rounded once, and the SIMD
 * kernels use instructions with that same single rounding: x86 FMA3
 * vfmadd231ps and aarch64 vfmaq_f32 (FMLA). Neither flushes subnormals
 * under the default MXCSR and FPCR, so every kernel gets the same bits;
 * -ffp-contract=off keeps the compiler from fusing any other multiply and
 * add. Zero codes are multiplied too, so that an infinite or NaN x reaches
 * the result on every kernel alike.
 */
#include <math.h>

#include "../internal.h"

static void accumulate_group(const rbe_gemm_args *args, const uint8_t *const *plane_rows,
                             const float *x, size_t first_col, float *lanes, float *x_lanes)
{
    const rbe_layout *layout = args->layout;
    size_t end_col = first_col + layout->group_size;

    for (size_t j = 0; j < RBE_GEMM_LANES; j++) {
        lanes[j] = 0.0f;
        x_lanes[j] = 0.0f;
    }

    for (size_t k = first_col; k < end_col; k++) {
        size_t j = (k - first_col) % RBE_GEMM_LANES;
        unsigned code = rbe_gemm_code_at(plane_rows, layout->bits, args->planes_used, k);
        x_lanes[j] += x[k];
        lanes[j] = fmaf(x[k], (float)code, lanes[j]);
    }
}

void rbe_gemm_decode_rows_scalar(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    const rbe_layout *layout = args->layout;
    float center_offset = rbe_center_offset(layout->bits, args->planes_used);

    for (size_t row = row_begin; row < row_end; row++) {
        const uint8_t *plane_rows[16];
        for (unsigned p = 0; p < args->planes_used; p++) {
            plane_rows[p] = args->planes[p] + row * layout->row_stride;
        }

        for (size_t m = 0; m < args->batch; m++) {
            const float *x = args->x + m * layout->cols;
            float total = 0.0f;

            for (size_t g = 0; g < layout->groups; g++) {
                float lanes[RBE_GEMM_LANES];
                float x_lanes[RBE_GEMM_LANES];
                size_t param = row * layout->groups + g;

                accumulate_group(args, plane_rows, x, g * layout->group_size, lanes, x_lanes);
                total = rbe_gemm_add_group(total, lanes, x_lanes, args->scale[param],
                                           center_offset, args->zero[param]);
            }
            args->y[m * layout->rows + row] = total;
        }
    }
}
