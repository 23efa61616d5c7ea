/*
 * AVX2 tile of the transposed product (see rbe_gemm_t_tile in internal.h).
 * A block of 4 batch entries by 16 columns keeps 8 accumulators in
 * registers while the tile's rows stream past: per row, two loads of
 * decoded weights, four broadcasts of dy, then a multiply and a separate
 * add per accumulator. Every lane is one dx element that adds its products
 * in increasing row order, as the scalar kernel does, so the results match
 * it bit for bit. Columns left over from the 8-wide steps run the scalar
 * loop, which performs the same operations.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>

#define BATCH_BLOCK 4

/* dx[m..m+3, k..k+15] += dy * w over the tile's rows. The accumulators are
 * named variables because GCC -O2 keeps a loop-indexed array on the stack. */
RBE_TARGET_AVX2
static void add_block4x16(const rbe_gemm_t_tile *tile, size_t m, size_t k)
{
    size_t dx_stride = tile->dx_stride;
    size_t dy_stride = tile->dy_stride;
    float *dx = tile->dx + m * dx_stride + k;
    const float *dy = tile->dy + m * dy_stride;
    __m256 a0 = _mm256_loadu_ps(dx), b0 = _mm256_loadu_ps(dx + 8);
    __m256 a1 = _mm256_loadu_ps(dx + dx_stride), b1 = _mm256_loadu_ps(dx + dx_stride + 8);
    __m256 a2 = _mm256_loadu_ps(dx + 2 * dx_stride), b2 = _mm256_loadu_ps(dx + 2 * dx_stride + 8);
    __m256 a3 = _mm256_loadu_ps(dx + 3 * dx_stride), b3 = _mm256_loadu_ps(dx + 3 * dx_stride + 8);

    for (size_t n = 0; n < tile->rows; n++) {
        const float *w = tile->w + n * tile->w_stride + k;
        __m256 low = _mm256_loadu_ps(w);
        __m256 high = _mm256_loadu_ps(w + 8);
        __m256 f0 = _mm256_broadcast_ss(dy + n);
        __m256 f1 = _mm256_broadcast_ss(dy + dy_stride + n);
        __m256 f2 = _mm256_broadcast_ss(dy + 2 * dy_stride + n);
        __m256 f3 = _mm256_broadcast_ss(dy + 3 * dy_stride + n);

        a0 = _mm256_add_ps(a0, _mm256_mul_ps(f0, low));
        b0 = _mm256_add_ps(b0, _mm256_mul_ps(f0, high));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(f1, low));
        b1 = _mm256_add_ps(b1, _mm256_mul_ps(f1, high));
        a2 = _mm256_add_ps(a2, _mm256_mul_ps(f2, low));
        b2 = _mm256_add_ps(b2, _mm256_mul_ps(f2, high));
        a3 = _mm256_add_ps(a3, _mm256_mul_ps(f3, low));
        b3 = _mm256_add_ps(b3, _mm256_mul_ps(f3, high));
    }
    _mm256_storeu_ps(dx, a0);
    _mm256_storeu_ps(dx + 8, b0);
    _mm256_storeu_ps(dx + dx_stride, a1);
    _mm256_storeu_ps(dx + dx_stride + 8, b1);
    _mm256_storeu_ps(dx + 2 * dx_stride, a2);
    _mm256_storeu_ps(dx + 2 * dx_stride + 8, b2);
    _mm256_storeu_ps(dx + 3 * dx_stride, a3);
    _mm256_storeu_ps(dx + 3 * dx_stride + 8, b3);
}

/* The same for one batch entry. */
RBE_TARGET_AVX2
static void add_block1x16(const rbe_gemm_t_tile *tile, size_t m, size_t k)
{
    float *dx = tile->dx + m * tile->dx_stride + k;
    const float *dy = tile->dy + m * tile->dy_stride;
    __m256 a = _mm256_loadu_ps(dx);
    __m256 b = _mm256_loadu_ps(dx + 8);

    for (size_t n = 0; n < tile->rows; n++) {
        const float *w = tile->w + n * tile->w_stride + k;
        __m256 factor = _mm256_broadcast_ss(dy + n);
        a = _mm256_add_ps(a, _mm256_mul_ps(factor, _mm256_loadu_ps(w)));
        b = _mm256_add_ps(b, _mm256_mul_ps(factor, _mm256_loadu_ps(w + 8)));
    }
    _mm256_storeu_ps(dx, a);
    _mm256_storeu_ps(dx + 8, b);
}

/* The same for 8 columns and one batch entry. */
RBE_TARGET_AVX2
static void add_block8(const rbe_gemm_t_tile *tile, size_t m, size_t k)
{
    float *dx = tile->dx + m * tile->dx_stride + k;
    const float *dy = tile->dy + m * tile->dy_stride;
    __m256 acc = _mm256_loadu_ps(dx);

    for (size_t n = 0; n < tile->rows; n++) {
        __m256 w = _mm256_loadu_ps(tile->w + n * tile->w_stride + k);
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_broadcast_ss(dy + n), w));
    }
    _mm256_storeu_ps(dx, acc);
}

/* Columns [k_begin, cols) of every batch entry, in the scalar order. */
static void add_columns_scalar(const rbe_gemm_t_tile *tile, size_t k_begin)
{
    rbe_gemm_t_tile rest = *tile;

    rest.w = tile->w + k_begin;
    rest.dx = tile->dx + k_begin;
    rest.cols = tile->cols - k_begin;
    rbe_gemm_t_tile_scalar(&rest);
}

RBE_TARGET_AVX2
void rbe_gemm_t_tile_avx2(const rbe_gemm_t_tile *tile)
{
    size_t wide_end = tile->cols / 16 * 16;
    size_t vector_end = tile->cols / 8 * 8;
    size_t m = 0;

    for (; m + BATCH_BLOCK <= tile->batch; m += BATCH_BLOCK) {
        for (size_t k = 0; k < wide_end; k += 16) {
            add_block4x16(tile, m, k);
        }
    }
    for (; m < tile->batch; m++) {
        for (size_t k = 0; k < wide_end; k += 16) {
            add_block1x16(tile, m, k);
        }
    }
    if (vector_end > wide_end) {
        for (m = 0; m < tile->batch; m++) {
            add_block8(tile, m, wide_end);
        }
    }
    if (tile->cols > vector_end) {
        add_columns_scalar(tile, vector_end);
    }
}
#else
typedef int rbe_gemm_t_avx2_unused;
#endif
