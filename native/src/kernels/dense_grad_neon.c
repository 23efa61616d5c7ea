/*
 * NEON (aarch64) weight-gradient tile (see rbe_dense_grad_fn in
 * internal.h), in the scheme of dense_grad_avx2.c. A block of 4 gradient
 * rows by 8 columns keeps 8 accumulators while the batch streams past. Each
 * step is a multiply and a separate add, so each lane matches the scalar
 * kernel bit for bit. armv7 runs the scalar kernel (see gemm_t_neon.c).
 */
#include "../internal.h"

#if defined(RBE_HAVE_NEON) && defined(__aarch64__)
#include <arm_neon.h>

#define ROW_BLOCK 4

/* Tile rows r..r+3 (gradient rows row..row+3), columns k..k+7. */
static void grad_block4x8(const rbe_dense_grad_args *args, size_t row, size_t k, float *out)
{
    size_t cols = args->cols;
    float32x4_t zero = vdupq_n_f32(0.0f);
    float32x4_t a0 = zero, b0 = zero, a1 = zero, b1 = zero;
    float32x4_t a2 = zero, b2 = zero, a3 = zero, b3 = zero;

    for (size_t m = 0; m < args->batch; m++) {
        const float *x = args->x + m * cols + k;
        const float *dy = args->dy + m * args->rows + row;
        float32x4_t low = vld1q_f32(x);
        float32x4_t high = vld1q_f32(x + 4);

        a0 = vaddq_f32(a0, vmulq_n_f32(low, dy[0]));
        b0 = vaddq_f32(b0, vmulq_n_f32(high, dy[0]));
        a1 = vaddq_f32(a1, vmulq_n_f32(low, dy[1]));
        b1 = vaddq_f32(b1, vmulq_n_f32(high, dy[1]));
        a2 = vaddq_f32(a2, vmulq_n_f32(low, dy[2]));
        b2 = vaddq_f32(b2, vmulq_n_f32(high, dy[2]));
        a3 = vaddq_f32(a3, vmulq_n_f32(low, dy[3]));
        b3 = vaddq_f32(b3, vmulq_n_f32(high, dy[3]));
    }

    float scale = args->grad_scale;
    float *target = out + k;
    vst1q_f32(target, vmulq_n_f32(a0, scale));
    vst1q_f32(target + 4, vmulq_n_f32(b0, scale));
    vst1q_f32(target + cols, vmulq_n_f32(a1, scale));
    vst1q_f32(target + cols + 4, vmulq_n_f32(b1, scale));
    vst1q_f32(target + 2 * cols, vmulq_n_f32(a2, scale));
    vst1q_f32(target + 2 * cols + 4, vmulq_n_f32(b2, scale));
    vst1q_f32(target + 3 * cols, vmulq_n_f32(a3, scale));
    vst1q_f32(target + 3 * cols + 4, vmulq_n_f32(b3, scale));
}

/* One gradient row, columns k..k+3. */
static void grad_block1x4(const rbe_dense_grad_args *args, size_t row, size_t k, float *out)
{
    float32x4_t acc = vdupq_n_f32(0.0f);

    for (size_t m = 0; m < args->batch; m++) {
        float32x4_t x = vld1q_f32(args->x + m * args->cols + k);
        acc = vaddq_f32(acc, vmulq_n_f32(x, args->dy[m * args->rows + row]));
    }
    vst1q_f32(out + k, vmulq_n_f32(acc, args->grad_scale));
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

void rbe_dense_grad_neon(const rbe_dense_grad_args *args, size_t row_begin, size_t row_count,
                         float *tile)
{
    size_t wide_end = args->cols / 8 * 8;
    size_t vector_end = args->cols / 4 * 4;
    size_t r = 0;

    for (; r + ROW_BLOCK <= row_count; r += ROW_BLOCK) {
        for (size_t k = 0; k < wide_end; k += 8) {
            grad_block4x8(args, row_begin + r, k, tile + r * args->cols);
        }
    }
    for (; r < row_count; r++) {
        for (size_t k = 0; k < wide_end; k += 4) {
            grad_block1x4(args, row_begin + r, k, tile + r * args->cols);
        }
    }
    for (r = 0; r < row_count; r++) {
        float *out = tile + r * args->cols;
        for (size_t k = wide_end; k < vector_end; k += 4) {
            grad_block1x4(args, row_begin + r, k, out);
        }
        grad_columns_scalar(args, row_begin + r, vector_end, out);
    }
}
#else
typedef int rbe_dense_grad_neon_unused;
#endif
