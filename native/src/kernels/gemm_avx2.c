/*
 * Entry point of the AVX2 product: the lookup kernel when rbe_gemm_f32
 * built tables, the decode kernel otherwise.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
/* The decode kernel multiplies with FMA3, which a few AVX2 CPUs lack. */
static int cpu_has_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma");
}

void rbe_gemm_rows_avx2(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    if (args->lut != NULL) {
        rbe_gemm_lut_rows_avx2(args, row_begin, row_end);
    } else if (cpu_has_fma()) {
        rbe_gemm_decode_rows_avx2(args, row_begin, row_end);
    } else {
        rbe_gemm_decode_rows_scalar(args, row_begin, row_end);
    }
}
#else
typedef int rbe_gemm_avx2_unused;
#endif
