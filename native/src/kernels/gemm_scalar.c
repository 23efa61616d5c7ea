/*
 * Entry point of the scalar product: the lookup path when rbe_gemm_f32
 * built tables, the decode path otherwise. It also serves group sizes that
 * are not a multiple of 16, which the SIMD kernels do not handle.
 */
#include "../internal.h"

void rbe_gemm_rows_scalar(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    if (args->lut != NULL) {
        rbe_gemm_lut_rows_scalar(args, row_begin, row_end);
    } else {
        rbe_gemm_decode_rows_scalar(args, row_begin, row_end);
    }
}
