/*
 * Entry point of the AVX-512 product: the lookup kernel when rbe_gemm_f32
 * built tables, the decode kernel otherwise. The decode kernel needs
 * AVX-512BW, VBMI and GFNI besides AVX-512F, and falls back to AVX2
 * without them.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
static int cpu_has_decode_features(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("gfni");
}

void rbe_gemm_rows_avx512(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    if (args->lut != NULL) {
        rbe_gemm_lut_rows_avx512(args, row_begin, row_end);
    } else if (cpu_has_decode_features()) {
        rbe_gemm_decode_rows_avx512(args, row_begin, row_end);
    } else {
        rbe_gemm_decode_rows_avx2(args, row_begin, row_end);
    }
}
#else
typedef int rbe_gemm_avx512_unused;
#endif
