/*
 * Upper-bitplane updates and LSB re-estimation. Both walk the matrix in
 * the codec's chunks: unpack the planes they touch into codes, change the
 * codes, and pack them back into the same planes.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

rbe_status rbe_update_check(const rbe_layout *layout, uint8_t *const *planes,
                            const float *scale, const int8_t *accum,
                            const rbe_update_params *params)
{
    if (planes == NULL || scale == NULL || params == NULL) {
        return RBE_ERR_NULL;
    }
    if (params->mode != RBE_UPDATE_ACCUMULATE && params->mode != RBE_UPDATE_SIGN) {
        return RBE_ERR_UNSUPPORTED;
    }
    if (params->mode == RBE_UPDATE_ACCUMULATE && accum == NULL) {
        return RBE_ERR_NULL;
    }
    if (params->upper_planes < 1 || params->upper_planes > layout->bits) {
        return RBE_ERR_PLANES;
    }
    for (unsigned p = 0; p < params->upper_planes; p++) {
        if (planes[p] == NULL) {
            return RBE_ERR_NULL;
        }
    }
    if (!(isfinite(params->learning_rate) && params->learning_rate > 0.0f)) {
        return RBE_ERR_VALUE;
    }

    for (size_t i = 0; i < layout->rows * layout->groups; i++) {
        if (!(isnormal(scale[i]) && scale[i] > 0.0f)) {
            return RBE_ERR_SCALE;
        }
    }
    return RBE_OK;
}

static rbe_status check_update_arguments(const rbe_layout *layout, uint8_t *const *planes,
                                         const float *scale, const float *grad,
                                         const int8_t *accum, const rbe_update_params *params)
{
    if (grad == NULL) {
        return RBE_ERR_NULL;
    }
    rbe_status status = rbe_update_check(layout, planes, scale, accum, params);
    if (status != RBE_OK) {
        return status;
    }
    for (size_t i = 0; i < layout->rows * layout->cols; i++) {
        if (!isfinite(grad[i])) {
            return RBE_ERR_VALUE;
        }
    }
    return RBE_OK;
}

/* Mixes seed and step into the key of one step's random stream. */
static uint32_t stream_key(uint64_t seed, uint64_t step)
{
    uint32_t key = rbe_hash32((uint32_t)(step >> 32) ^ 0x9e3779b9u);
    key = rbe_hash32(key ^ (uint32_t)step);
    key = rbe_hash32(key ^ (uint32_t)(seed >> 32));
    return rbe_hash32(key ^ (uint32_t)seed);
}

static void update_segments(const rbe_layout *layout, const rbe_kernels *kernels,
                            const float *scale, const float *grad_row, int8_t *accum,
                            const rbe_update_params *params, const rbe_update_segment *base,
                            const rbe_chunk *at, uint16_t *upper)
{
    float step_size = (float)(1u << (layout->bits - params->upper_planes));
    size_t end = at->first_col + at->cols;

    for (size_t c = at->first_col; c < end;) {
        size_t g = c / layout->group_size;
        size_t group_end = (g + 1) * layout->group_size;
        size_t stop = group_end < end ? group_end : end;
        size_t element = at->row * layout->cols + c;
        rbe_update_segment segment = *base;

        segment.factor = params->learning_rate / (scale[at->row * layout->groups + g] * step_size);
        segment.first_index = (uint32_t)element;
        kernels->update_upper(&segment, upper + (c - at->first_col), grad_row + c,
                              accum != NULL ? accum + element : NULL, stop - c);
        c = stop;
    }
}

static void update_chunk(const rbe_layout *layout, const rbe_kernels *kernels,
                         uint8_t *const *planes, const float *scale, const float *grad_row,
                         int8_t *accum, const rbe_update_params *params,
                         const rbe_update_segment *base, const rbe_chunk *at)
{
    unsigned upper_planes = params->upper_planes;
    const uint8_t *plane_rows[16];
    uint16_t upper[RBE_CHUNK_COLS];

    rbe_point_plane_rows(layout, (const uint8_t *const *)planes, upper_planes, at, plane_rows);
    kernels->unpack(plane_rows, at->plane_bytes, upper_planes, upper_planes, upper);
    update_segments(layout, kernels, scale, grad_row, accum, params, base, at, upper);

    /* Only the top upper_planes plane rows are rewritten. */
    kernels->encode_row(upper, at->cols, upper_planes, (uint8_t *const *)plane_rows);
}

/* Folds the accumulators of row r into all B planes of that row. */
static void fold_row(const rbe_layout *layout, const rbe_kernels *kernels,
                     uint8_t *const *planes, int8_t *accum, unsigned upper_planes, size_t r)
{
    for (size_t c0 = 0; c0 < layout->cols; c0 += RBE_CHUNK_COLS) {
        rbe_chunk at = rbe_chunk_at(layout, r, c0);
        const uint8_t *plane_rows[16];
        uint16_t codes[RBE_CHUNK_COLS];

        rbe_point_plane_rows(layout, (const uint8_t *const *)planes, layout->bits, &at,
                             plane_rows);
        kernels->unpack(plane_rows, at.plane_bytes, layout->bits, layout->bits, codes);
        kernels->fold(codes, accum + r * layout->cols + c0, at.cols, layout->bits,
                      upper_planes);
        kernels->encode_row(codes, at.cols, layout->bits, (uint8_t *const *)plane_rows);
    }
}

rbe_status rbe_update_upper(const rbe_layout *layout, uint8_t *const *planes,
                            const float *scale, const float *grad, int8_t *accum,
                            const rbe_update_params *params)
{
    rbe_status status = rbe_layout_check(layout);
    if (status != RBE_OK) {
        return status;
    }
    status = check_update_arguments(layout, planes, scale, grad, accum, params);
    if (status != RBE_OK) {
        return status;
    }
    const rbe_kernels *kernels = rbe_kernels_for(layout->isa);
    if (kernels == NULL) {
        return RBE_ERR_ISA;
    }

    rbe_update_rows(layout, kernels, planes, scale, grad, accum, params, 0, 0, layout->rows);
    return RBE_OK;
}

void rbe_update_rows(const rbe_layout *layout, const rbe_kernels *kernels,
                     uint8_t *const *planes, const float *scale, const float *grad_rows,
                     int8_t *accum, const rbe_update_params *params, int fold,
                     size_t row_begin, size_t row_end)
{
    rbe_update_segment base;
    memset(&base, 0, sizeof(base));
    base.key = stream_key(params->seed, params->step);
    base.max_upper = (1u << params->upper_planes) - 1u;
    base.mode = params->mode;
    if (params->mode == RBE_UPDATE_SIGN) {
        accum = NULL;
    }

    for (size_t r = row_begin; r < row_end; r++) {
        const float *grad_row = grad_rows + (r - row_begin) * layout->cols;
        for (size_t c0 = 0; c0 < layout->cols; c0 += RBE_CHUNK_COLS) {
            rbe_chunk at = rbe_chunk_at(layout, r, c0);
            update_chunk(layout, kernels, planes, scale, grad_row, accum, params, &base, &at);
        }
        /* Folding right after the step finds the row's planes still in cache. */
        if (fold && accum != NULL) {
            fold_row(layout, kernels, planes, accum, params->upper_planes, r);
        }
    }
}

rbe_status rbe_fold_lsb(const rbe_layout *layout, uint8_t *const *planes, int8_t *accum,
                        unsigned upper_planes)
{
    rbe_status status = rbe_layout_check(layout);
    if (status != RBE_OK) {
        return status;
    }
    if (planes == NULL || accum == NULL) {
        return RBE_ERR_NULL;
    }
    if (upper_planes < 1 || upper_planes > layout->bits) {
        return RBE_ERR_PLANES;
    }
    for (unsigned p = 0; p < layout->bits; p++) {
        if (planes[p] == NULL) {
            return RBE_ERR_NULL;
        }
    }
    const rbe_kernels *kernels = rbe_kernels_for(layout->isa);
    if (kernels == NULL) {
        return RBE_ERR_ISA;
    }

    for (size_t r = 0; r < layout->rows; r++) {
        fold_row(layout, kernels, planes, accum, upper_planes, r);
    }
    return RBE_OK;
}
