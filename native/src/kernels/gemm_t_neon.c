/*
 * NEON (aarch64) tile of the transposed product (see rbe_gemm_t_tile in
 * internal.h), in the scheme of gemm_t_avx2.c with 4-float registers. A
 * block of 4 batch entries by 8 columns keeps 8 accumulators while the
 * tile's rows stream past. Each step is vmulq and then vaddq, never a fused
 * vfmaq, so each lane matches the scalar kernel bit for bit. Columns left
 * over from the 4-wide steps run the scalar loop.
 *
 * armv7 runs the scalar kernel instead: its NEON flushes subnormal floats
 * to zero, and products of small gradients and weights can be subnormal.
 */
#include "../internal.h"

#if defined(RBE_HAVE_NEON) && defined(__aarch64__)
#include <arm_neon.h>

#define BATCH_BLOCK 4

/* dx[m..m+3, k..k+7] += dy * w over the tile's rows. */
static void add_block4x8(const rbe_gemm_t_tile *tile, size_t m, size_t k)
{
    size_t dx_stride = tile->dx_stride;
    size_t dy_stride = tile->dy_stride;
    float *dx = tile->dx + m * dx_stride + k;
    const float *dy = tile->dy + m * dy_stride;
    float32x4_t a0 = vld1q_f32(dx), b0 = vld1q_f32(dx + 4);
    float32x4_t a1 = vld1q_f32(dx + dx_stride), b1 = vld1q_f32(dx + dx_stride + 4);
    float32x4_t a2 = vld1q_f32(dx + 2 * dx_stride), b2 = vld1q_f32(dx + 2 * dx_stride + 4);
    float32x4_t a3 = vld1q_f32(dx + 3 * dx_stride), b3 = vld1q_f32(dx + 3 * dx_stride + 4);

    for (size_t n = 0; n < tile->rows; n++) {
        const float *w = tile->w + n * tile->w_stride + k;
        float32x4_t low = vld1q_f32(w);
        float32x4_t high = vld1q_f32(w + 4);
        float f0 = dy[n];
        float f1 = dy[dy_stride + n];
        float f2 = dy[2 * dy_stride + n];
        float f3 = dy[3 * dy_stride + n];

        a0 = vaddq_f32(a0, vmulq_n_f32(low, f0));
        b0 = vaddq_f32(b0, vmulq_n_f32(high, f0));
        a1 = vaddq_f32(a1, vmulq_n_f32(low, f1));
        b1 = vaddq_f32(b1, vmulq_n_f32(high, f1));
        a2 = vaddq_f32(a2, vmulq_n_f32(low, f2));
        b2 = vaddq_f32(b2, vmulq_n_f32(high, f2));
        a3 = vaddq_f32(a3, vmulq_n_f32(low, f3));
        b3 = vaddq_f32(b3, vmulq_n_f32(high, f3));
    }
    vst1q_f32(dx, a0);
    vst1q_f32(dx + 4, b0);
    vst1q_f32(dx + dx_stride, a1);
    vst1q_f32(dx + dx_stride + 4, b1);
    vst1q_f32(dx + 2 * dx_stride, a2);
    vst1q_f32(dx + 2 * dx_stride + 4, b2);
    vst1q_f32(dx + 3 * dx_stride, a3);
    vst1q_f32(dx + 3 * dx_stride + 4, b3);
}

/* dx[m, k..k+3] += dy * w over the tile's rows, for one batch entry. */
static void add_block1x4(const rbe_gemm_t_tile *tile, size_t m, size_t k)
{
    float *dx = tile->dx + m * tile->dx_stride + k;
    const float *dy = tile->dy + m * tile->dy_stride;
    float32x4_t acc = vld1q_f32(dx);

    for (size_t n = 0; n < tile->rows; n++) {
        float32x4_t w = vld1q_f32(tile->w + n * tile->w_stride + k);
        acc = vaddq_f32(acc, vmulq_n_f32(w, dy[n]));
    }
    vst1q_f32(dx, acc);
}

void rbe_gemm_t_tile_neon(const rbe_gemm_t_tile *tile)
{
    size_t wide_end = tile->cols / 8 * 8;
    size_t vector_end = tile->cols / 4 * 4;
    size_t m = 0;

    for (; m + BATCH_BLOCK <= tile->batch; m += BATCH_BLOCK) {
        for (size_t k = 0; k < wide_end; k += 8) {
            add_block4x8(tile, m, k);
        }
    }
    for (; m < tile->batch; m++) {
        for (size_t k = 0; k < wide_end; k += 4) {
            add_block1x4(tile, m, k);
        }
    }
    for (m = 0; m < tile->batch; m++) {
        for (size_t k = wide_end; k < vector_end; k += 4) {
            add_block1x4(tile, m, k);
        }
    }
    if (tile->cols > vector_end) {
        rbe_gemm_t_tile rest = *tile;
        rest.w = tile->w + vector_end;
        rest.dx = tile->dx + vector_end;
        rest.cols = tile->cols - vector_end;
        rbe_gemm_t_tile_scalar(&rest);
    }
}
#else
typedef int rbe_gemm_t_neon_unused;
#endif
