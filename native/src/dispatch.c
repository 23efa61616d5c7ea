/*
 * Run-time kernel selection. The tables are constant; choosing one reads
 * only the CPU feature flags, so dispatch holds no mutable state.
 */
#include "internal.h"

static const rbe_kernels kScalar = {
    RBE_ISA_SCALAR,
    rbe_encode_row_scalar,
    rbe_unpack_scalar,
    rbe_dequant_f32_scalar,
    rbe_refine_f32_scalar,
    rbe_dequant_i8_scalar,
    rbe_gemm_rows_scalar,
    rbe_update_upper_scalar,
    rbe_gemm_t_tile_scalar,
    rbe_dense_grad_scalar,
    rbe_fold_scalar,
    {"encode_row_scalar", "unpack_scalar", "dequant_f32_scalar", "refine_f32_scalar",
     "dequant_i8_scalar", "gemm_f32_scalar", "update_upper_scalar", "gemm_t_f32_scalar",
     "dense_grad_scalar", "fold_scalar"},
};

#ifdef RBE_HAVE_X86
static const rbe_kernels kAvx2 = {
    RBE_ISA_AVX2,
    rbe_encode_row_avx2,
    rbe_unpack_avx2,
    rbe_dequant_f32_avx2,
    rbe_refine_f32_avx2,
    rbe_dequant_i8_avx2,
    rbe_gemm_rows_avx2,
    rbe_update_upper_avx2,
    rbe_gemm_t_tile_avx2,
    rbe_dense_grad_avx2,
    rbe_fold_avx2,
    {"encode_row_avx2", "unpack_avx2", "dequant_f32_avx2", "refine_f32_avx2",
     "dequant_i8_avx2", "gemm_f32_avx2", "update_upper_avx2", "gemm_t_f32_avx2",
     "dense_grad_avx2", "fold_avx2"},
};

/* AVX-512 replaces only the product; the codec kernels stay AVX2, which
 * already decodes near memory bandwidth. An AVX-512 tile of the transposed
 * product (8 batch entries by 32 columns) measured no faster than the AVX2
 * one on an AMD EPYC (Zen 4), so the AVX2 training kernels serve here too. */
static const rbe_kernels kAvx512 = {
    RBE_ISA_AVX512,
    rbe_encode_row_avx2,
    rbe_unpack_avx2,
    rbe_dequant_f32_avx2,
    rbe_refine_f32_avx2,
    rbe_dequant_i8_avx2,
    rbe_gemm_rows_avx512,
    rbe_update_upper_avx2,
    rbe_gemm_t_tile_avx2,
    rbe_dense_grad_avx2,
    rbe_fold_avx2,
    {"encode_row_avx2", "unpack_avx2", "dequant_f32_avx2", "refine_f32_avx2",
     "dequant_i8_avx2", "gemm_f32_avx512", "update_upper_avx2", "gemm_t_f32_avx2",
     "dense_grad_avx2", "fold_avx2"},
};

static int cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

static int cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f");
}
#endif

#ifdef RBE_HAVE_NEON
/* NEON is part of aarch64; on armv7 a build with NEON enabled requires it.
 * armv7 keeps the scalar product and update (see gemm_neon.c, update_neon.c). */
#if defined(__aarch64__)
#define RBE_GEMM_NEON rbe_gemm_rows_neon
#define RBE_GEMM_NEON_NAME "gemm_f32_neon"
#define RBE_UPDATE_NEON rbe_update_upper_neon
#define RBE_UPDATE_NEON_NAME "update_upper_neon"
#define RBE_GEMM_T_NEON rbe_gemm_t_tile_neon
#define RBE_GEMM_T_NEON_NAME "gemm_t_f32_neon"
#define RBE_DENSE_GRAD_NEON rbe_dense_grad_neon
#define RBE_DENSE_GRAD_NEON_NAME "dense_grad_neon"
#else
#define RBE_GEMM_NEON rbe_gemm_rows_scalar
#define RBE_GEMM_NEON_NAME "gemm_f32_scalar"
#define RBE_UPDATE_NEON rbe_update_upper_scalar
#define RBE_UPDATE_NEON_NAME "update_upper_scalar"
#define RBE_GEMM_T_NEON rbe_gemm_t_tile_scalar
#define RBE_GEMM_T_NEON_NAME "gemm_t_f32_scalar"
#define RBE_DENSE_GRAD_NEON rbe_dense_grad_scalar
#define RBE_DENSE_GRAD_NEON_NAME "dense_grad_scalar"
#endif
static const rbe_kernels kNeon = {
    RBE_ISA_NEON,
    rbe_encode_row_neon,
    rbe_unpack_neon,
    rbe_dequant_f32_neon,
    rbe_refine_f32_neon,
    rbe_dequant_i8_neon,
    RBE_GEMM_NEON,
    RBE_UPDATE_NEON,
    RBE_GEMM_T_NEON,
    RBE_DENSE_GRAD_NEON,
    rbe_fold_neon,
    {"encode_row_neon", "unpack_neon", "dequant_f32_neon", "refine_f32_neon",
     "dequant_i8_neon", RBE_GEMM_NEON_NAME, RBE_UPDATE_NEON_NAME, RBE_GEMM_T_NEON_NAME,
     RBE_DENSE_GRAD_NEON_NAME, "fold_neon"},
};
#endif

const rbe_kernels *rbe_kernels_for(rbe_isa isa)
{
    switch (isa) {
    case RBE_ISA_AUTO:
#ifdef RBE_HAVE_X86
        if (cpu_has_avx512()) {
            return &kAvx512;
        }
        if (cpu_has_avx2()) {
            return &kAvx2;
        }
#endif
#ifdef RBE_HAVE_NEON
        return &kNeon;
#endif
        return &kScalar;
    case RBE_ISA_SCALAR:
        return &kScalar;
    case RBE_ISA_AVX2:
#ifdef RBE_HAVE_X86
        if (cpu_has_avx2()) {
            return &kAvx2;
        }
#endif
        return NULL;
    case RBE_ISA_AVX512:
#ifdef RBE_HAVE_X86
        if (cpu_has_avx512()) {
            return &kAvx512;
        }
#endif
        return NULL;
    case RBE_ISA_NEON:
#ifdef RBE_HAVE_NEON
        return &kNeon;
#endif
        return NULL;
    }
    return NULL;
}

rbe_status rbe_selected_isa(rbe_isa *isa)
{
    if (isa == NULL) {
        return RBE_ERR_NULL;
    }
    *isa = rbe_kernels_for(RBE_ISA_AUTO)->isa;
    return RBE_OK;
}

rbe_status rbe_isa_available(rbe_isa isa, int *available)
{
    if (available == NULL) {
        return RBE_ERR_NULL;
    }
    if (isa != RBE_ISA_AUTO && isa != RBE_ISA_SCALAR && isa != RBE_ISA_AVX2 &&
        isa != RBE_ISA_NEON && isa != RBE_ISA_AVX512) {
        return RBE_ERR_ISA;
    }
    *available = rbe_kernels_for(isa) != NULL;
    return RBE_OK;
}

rbe_status rbe_kernel_name(rbe_kernel kernel, rbe_isa isa, const char **name)
{
    if (name == NULL) {
        return RBE_ERR_NULL;
    }

    const rbe_kernels *kernels = rbe_kernels_for(isa);
    if (kernels == NULL) {
        return RBE_ERR_ISA;
    }
    if ((unsigned)kernel > (unsigned)RBE_KERNEL_FOLD_LSB) {
        return RBE_ERR_UNSUPPORTED;
    }
    *name = kernels->names[kernel];
    return RBE_OK;
}
