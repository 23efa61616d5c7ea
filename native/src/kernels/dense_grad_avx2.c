/*
 * AVX2 weight-gradient tile (see rbe_dense_grad_fn in internal.h). A block
 * of 4 gradient rows by 16 columns keeps 8 accumulators in registers while
 * the batch streams past: per batch entry, two loads of x, four broadcasts
 * of dy, then a multiply and a separate add per accumulator. Every lane
 * sums its batch products in increasing m, as the scalar kernel does, so
 * the results match it bit for bit. Leftover columns run the scalar loop.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>

#define ROW_BLOCK 4

/* Tile rows r..r+3 (gradient rows row..row+3), columns k..k+15. The
 * accumulators are named variables because GCC -O2 keeps a loop-indexed
 * array on the stack. */
RBE_TARGET_AVX2
static void grad_block4x16(const rbe_dense_grad_args *args, size_t row, size_t k, float *out)
{
    size_t cols = args->cols;
    __m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
    __m256 a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps();
    __m256 a3 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();

    for (size_t m = 0; m < args->batch; m++) {
        const float *x = args->x + m * cols + k;
        const float *dy = args->dy + m * args->rows + row;
        __m256 low = _mm256_loadu_ps(x);
        __m256 high = _mm256_loadu_ps(x + 8);
        __m256 f0 = _mm256_broadcast_ss(dy);
        __m256 f1 = _mm256_broadcast_ss(dy + 1);
        __m256 f2 = _mm256_broadcast_ss(dy + 2);
        __m256 f3 = _mm256_broadcast_ss(dy + 3);

        a0 = _mm256_add_ps(a0, _mm256_mul_ps(f0, low));
        b0 = _mm256_add_ps(b0, _mm256_mul_ps(f0, high));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(f1, low));
        b1 = _mm256_add_ps(b1, _mm256_mul_ps(f1, high));
        a2 = _mm256_add_ps(a2, _mm256_mul_ps(f2, low));
        b2 = _mm256_add_ps(b2, _mm256_mul_ps(f2, high));
        a3 = _mm256_add_ps(a3, _mm256_mul_ps(f3, low));
        b3 = _mm256_add_ps(b3, _mm256_mul_ps(f3, high));
    }

    __m256 scale = _mm256_set1_ps(args->grad_scale);
    float *target = out + k;
    _mm256_storeu_ps(target, _mm256_mul_ps(scale, a0));
    _mm256_storeu_ps(target + 8, _mm256_mul_ps(scale, b0));
    _mm256_storeu_ps(target + cols, _mm256_mul_ps(scale, a1));
    _mm256_storeu_ps(target + cols + 8, _mm256_mul_ps(scale, b1));
    _mm256_storeu_ps(target + 2 * cols, _mm256_mul_ps(scale, a2));
    _mm256_storeu_ps(target + 2 * cols + 8, _mm256_mul_ps(scale, b2));
    _mm256_storeu_ps(target + 3 * cols, _mm256_mul_ps(scale, a3));
    _mm256_storeu_ps(target + 3 * cols + 8, _mm256_mul_ps(scale, b3));
}

/* One gradient row, columns k..k+15. */
RBE_TARGET_AVX2
static void grad_block1x16(const rbe_dense_grad_args *args, size_t row, size_t k, float *out)
{
    __m256 a = _mm256_setzero_ps();
    __m256 b = _mm256_setzero_ps();

    for (size_t m = 0; m < args->batch; m++) {
        const float *x = args->x + m * args->cols + k;
        __m256 factor = _mm256_broadcast_ss(args->dy + m * args->rows + row);
        a = _mm256_add_ps(a, _mm256_mul_ps(factor, _mm256_loadu_ps(x)));
        b = _mm256_add_ps(b, _mm256_mul_ps(factor, _mm256_loadu_ps(x + 8)));
    }

    __m256 scale = _mm256_set1_ps(args->grad_scale);
    _mm256_storeu_ps(out + k, _mm256_mul_ps(scale, a));
    _mm256_storeu_ps(out + k + 8, _mm256_mul_ps(scale, b));
}

/* One gradient row, 8 columns. */
RBE_TARGET_AVX2
static void grad_block8(const rbe_dense_grad_args *args, size_t row, size_t k, float *out)
{
    __m256 acc = _mm256_setzero_ps();

    for (size_t m = 0; m < args->batch; m++) {
        __m256 factor = _mm256_broadcast_ss(args->dy + m * args->rows + row);
        acc = _mm256_add_ps(acc, _mm256_mul_ps(factor, _mm256_loadu_ps(args->x + m * args->cols + k)));
    }
    _mm256_storeu_ps(out + k, _mm256_mul_ps(_mm256_set1_ps(args->grad_scale), acc));
}

/* Columns [k_begin, cols) of one gradient row, in the scalar order. */
static void grad_columns_scalar(const rbe_dense_grad_args *args, size_t row, size_t k_begin,
                                float *out)
{
    for (size_t k = k_begin; k < args->cols; k++) {
        float sum = 0.0f;
        for (size_t m = 0; m < args->batch; m++) {
            float product = args->dy[m * args->rows + row] * args->x[m * args->cols + k];
            sum = sum + product;
        }
        out[k] = args->grad_scale * sum;
    }
}

RBE_TARGET_AVX2
void rbe_dense_grad_avx2(const rbe_dense_grad_args *args, size_t row_begin, size_t row_count,
                         float *tile)
{
    size_t wide_end = args->cols / 16 * 16;
    size_t vector_end = args->cols / 8 * 8;
    size_t r = 0;

    for (; r + ROW_BLOCK <= row_count; r += ROW_BLOCK) {
        for (size_t k = 0; k < wide_end; k += 16) {
            grad_block4x16(args, row_begin + r, k, tile + r * args->cols);
        }
    }
    for (; r < row_count; r++) {
        for (size_t k = 0; k < wide_end; k += 16) {
            grad_block1x16(args, row_begin + r, k, tile + r * args->cols);
        }
    }
    for (r = 0; r < row_count; r++) {
        float *out = tile + r * args->cols;
        if (vector_end > wide_end) {
            grad_block8(args, row_begin + r, wide_end, out);
        }
        grad_columns_scalar(args, row_begin + r, vector_end, out);
    }
}
#else
typedef int rbe_dense_grad_avx2_unused;
#endif
