/*
 * Entry point of the NEON (aarch64) product: the lookup kernel when
 * rbe_gemm_f32 built tables, the decode kernel otherwise.
 */
#include "../internal.h"

#if defined(RBE_HAVE_NEON) && defined(__aarch64__)
void rbe_gemm_rows_neon(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    if (args->lut != NULL) {
        rbe_gemm_lut_rows_neon(args, row_begin, row_end);
    } else {
        rbe_gemm_decode_rows_neon(args, row_begin, row_end);
    }
}
#else
typedef int rbe_gemm_neon_unused;
#endif
