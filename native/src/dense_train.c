/*
 * Training a dense layer on its planes. The squared norm of its weight
 * gradient comes from the Gram identity. The upper-bitplane step computes
 * the weight gradient a few rows at a time and feeds each tile to the same
 * update that rbe_update_upper runs, so no buffer of the weight matrix's
 * size is ever allocated.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "internal.h"

/*
 * Gradient rows per tile: two of the SIMD kernels' 4-row register blocks. A
 * tile of a 4864-column layer is 152 KiB, which fits in L2 beside x.
 */
/* NOTE: with thousands of batch rows (a token head), the gradient takes
 * about 4 times as long as numpy's float32 GEMM: 87 against 23 ms for
 * 384 x 1536 at 2048 rows (AVX2, one thread). The kernels round each
 * product before adding it and reload x for every 4 rows. Tiles of 64 rows
 * ran no faster, so the limit is the arithmetic, not memory. */
#define DENSE_TILE_ROWS 8

/* Sum of a[i] * b[i] in double, in four interleaved partial sums for speed. */
static double dot_double(const float *a, const float *b, size_t n)
{
    double partial[4] = {0.0, 0.0, 0.0, 0.0};
    size_t i = 0;

    for (; i + 4 <= n; i += 4) {
        for (size_t j = 0; j < 4; j++) {
            partial[j] += (double)a[i + j] * (double)b[i + j];
        }
    }
    for (; i < n; i++) {
        partial[0] += (double)a[i] * (double)b[i];
    }
    return (partial[0] + partial[1]) + (partial[2] + partial[3]);
}

rbe_status rbe_dense_grad_sum_squares(size_t rows, size_t cols, const float *x,
                                      const float *dy, size_t batch, double *sum_squares)
{
    if (x == NULL || dy == NULL || sum_squares == NULL) {
        return RBE_ERR_NULL;
    }
    if (rows == 0 || cols == 0 || batch == 0 || batch > SIZE_MAX / sizeof(float) / rows ||
        batch > SIZE_MAX / sizeof(float) / cols) {
        return RBE_ERR_SIZE;
    }

    /* ||dy^T x||_F^2 = <dy dy^T, x x^T>_F, and both Gram matrices are
     * symmetric, so each pair m < m' counts twice. */
    double total = 0.0;
    for (size_t m = 0; m < batch; m++) {
        const float *dy_m = dy + m * rows;
        const float *x_m = x + m * cols;

        total += dot_double(dy_m, dy_m, rows) * dot_double(x_m, x_m, cols);
        for (size_t other = m + 1; other < batch; other++) {
            double dy_gram = dot_double(dy_m, dy + other * rows, rows);
            double x_gram = dot_double(x_m, x + other * cols, cols);
            total += 2.0 * (dy_gram * x_gram);
        }
    }

    /* The exact value is never negative, but rounding can push a near-zero
     * total below zero. */
    *sum_squares = total > 0.0 ? total : 0.0;
    return RBE_OK;
}

static size_t tile_rows(const rbe_layout *layout)
{
    return layout->rows < DENSE_TILE_ROWS ? layout->rows : DENSE_TILE_ROWS;
}

size_t rbe_dense_update_workspace(const rbe_layout *layout)
{
    if (rbe_layout_check(layout) != RBE_OK) {
        return 0;
    }
    return tile_rows(layout) * layout->cols;
}

int rbe_max_abs_finite(const float *data, size_t n, float *max_abs)
{
    float largest = 0.0f;

    for (size_t i = 0; i < n; i++) {
        if (!isfinite(data[i])) {
            return 0;
        }
        float magnitude = fabsf(data[i]);
        largest = magnitude > largest ? magnitude : largest;
    }
    *max_abs = largest;
    return 1;
}

/*
 * Checks that x and dy are finite and that neither the batch sum nor its
 * scaled value can overflow: every partial sum is at most
 * batch * max|dy| * max|x| times (1 + rounding), which the factor 2 covers.
 */
static rbe_status check_gradient_inputs(const rbe_layout *layout, const float *x,
                                        const float *dy, size_t batch, float grad_scale)
{
    float max_x = 0.0f;
    float max_dy = 0.0f;

    if (!rbe_max_abs_finite(x, batch * layout->cols, &max_x) ||
        !rbe_max_abs_finite(dy, batch * layout->rows, &max_dy)) {
        return RBE_ERR_VALUE;
    }
    double growth = grad_scale > 1.0f ? (double)grad_scale : 1.0;
    double bound = 2.0 * growth * (double)batch * (double)max_dy * (double)max_x;
    return bound <= FLT_MAX ? RBE_OK : RBE_ERR_VALUE;
}

static rbe_status check_dense_update_arguments(const rbe_layout *layout, uint8_t *const *planes,
                                               const float *scale, const float *x,
                                               const float *dy, size_t batch, float grad_scale,
                                               const int8_t *accum,
                                               const rbe_update_params *params,
                                               const float *workspace, size_t workspace_floats)
{
    if (x == NULL || dy == NULL || workspace == NULL) {
        return RBE_ERR_NULL;
    }
    rbe_status status = rbe_update_check(layout, planes, scale, accum, params);
    if (status != RBE_OK) {
        return status;
    }
    if (batch == 0 || batch > SIZE_MAX / sizeof(float) / layout->cols ||
        batch > SIZE_MAX / sizeof(float) / layout->rows ||
        workspace_floats < rbe_dense_update_workspace(layout)) {
        return RBE_ERR_SIZE;
    }
    if (!(isfinite(grad_scale) && grad_scale > 0.0f)) {
        return RBE_ERR_VALUE;
    }
    return check_gradient_inputs(layout, x, dy, batch, grad_scale);
}

/* Folding rewrites every plane, not only the upper ones that the update checks. */
static rbe_status check_fold_planes(const rbe_layout *layout, uint8_t *const *planes)
{
    for (unsigned p = 0; p < layout->bits; p++) {
        if (planes[p] == NULL) {
            return RBE_ERR_NULL;
        }
    }
    return RBE_OK;
}

rbe_status rbe_dense_update(const rbe_layout *layout, uint8_t *const *planes,
                            const float *scale, const float *x, const float *dy,
                            size_t batch, float grad_scale, int8_t *accum,
                            const rbe_update_params *params, int fold_lsb,
                            float *workspace, size_t workspace_floats)
{
    rbe_status status = rbe_layout_check(layout);
    if (status != RBE_OK) {
        return status;
    }
    status = check_dense_update_arguments(layout, planes, scale, x, dy, batch, grad_scale, accum,
                                          params, workspace, workspace_floats);
    int folding = fold_lsb && params->mode == RBE_UPDATE_ACCUMULATE;
    if (status == RBE_OK && folding) {
        status = check_fold_planes(layout, planes);
    }
    if (status != RBE_OK) {
        return status;
    }
    const rbe_kernels *kernels = rbe_kernels_for(layout->isa);
    if (kernels == NULL) {
        return RBE_ERR_ISA;
    }

    rbe_dense_grad_args grad = {x, dy, layout->rows, layout->cols, batch, grad_scale};
    size_t step_rows = tile_rows(layout);
    for (size_t row = 0; row < layout->rows; row += step_rows) {
        size_t count = layout->rows - row < step_rows ? layout->rows - row : step_rows;

        kernels->dense_grad(&grad, row, count, workspace);
        rbe_update_rows(layout, kernels, planes, scale, workspace, accum, params, folding, row,
                        row + count);
    }
    return RBE_OK;
}
