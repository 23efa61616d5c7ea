/*
 * Public codec entry points: validate everything, then walk the matrix row
 * by row in chunks of RBE_CHUNK_COLS columns (see rbe_chunk). Each chunk is
 * unpacked into a small stack buffer of codes, then converted group segment
 * by group segment, so group sizes need not align with any vector width.
 */
#include <string.h>

#include "internal.h"

static rbe_status check_planes(const uint8_t *const *planes, unsigned count)
{
    if (planes == NULL) {
        return RBE_ERR_NULL;
    }
    for (unsigned p = 0; p < count; p++) {
        if (planes[p] == NULL) {
            return RBE_ERR_NULL;
        }
    }
    return RBE_OK;
}

/* Validates the layout and picks its kernels; *kernels is set on success. */
static rbe_status begin(const rbe_layout *layout, const rbe_kernels **kernels)
{
    rbe_status status = rbe_layout_check(layout);
    if (status != RBE_OK) {
        return status;
    }

    *kernels = rbe_kernels_for(layout->isa);
    return *kernels == NULL ? RBE_ERR_ISA : RBE_OK;
}

rbe_status rbe_encode(const rbe_layout *layout, const uint16_t *codes,
                      uint8_t *const *planes)
{
    const rbe_kernels *kernels;
    rbe_status status = begin(layout, &kernels);
    if (status != RBE_OK) {
        return status;
    }
    if (codes == NULL) {
        return RBE_ERR_NULL;
    }
    status = check_planes((const uint8_t *const *)planes, layout->bits);
    if (status != RBE_OK) {
        return status;
    }

    /* Check every code before writing, so a failed call writes nothing. */
    size_t count = layout->rows * layout->cols;
    uint16_t high_bits = 0;
    for (size_t i = 0; i < count; i++) {
        high_bits |= (uint16_t)(codes[i] >> layout->bits);
    }
    if (high_bits != 0) {
        return RBE_ERR_CODE_RANGE;
    }

    size_t used_bytes = (layout->cols + 7) / 8;
    for (size_t r = 0; r < layout->rows; r++) {
        uint8_t *plane_rows[16];
        for (unsigned p = 0; p < layout->bits; p++) {
            plane_rows[p] = planes[p] + r * layout->row_stride;
        }

        kernels->encode_row(codes + r * layout->cols, layout->cols, layout->bits, plane_rows);
        for (unsigned p = 0; p < layout->bits; p++) {
            memset(plane_rows[p] + used_bytes, 0, layout->row_stride - used_bytes);
        }
    }
    return RBE_OK;
}

rbe_status rbe_decode_f32(const rbe_layout *layout, const uint8_t *const *planes,
                          unsigned planes_used, const float *scale, const float *zero,
                          float *out)
{
    const rbe_kernels *kernels;
    rbe_status status = begin(layout, &kernels);
    if (status != RBE_OK) {
        return status;
    }
    if (scale == NULL || zero == NULL || out == NULL) {
        return RBE_ERR_NULL;
    }
    if (planes_used < 1 || planes_used > layout->bits) {
        return RBE_ERR_PLANES;
    }
    status = check_planes(planes, planes_used);
    if (status == RBE_OK) {
        status = rbe_check_scale_zero(layout, scale, zero);
    }
    if (status != RBE_OK) {
        return status;
    }

    /* The unpacked codes carry the integer 2^(B-P-1); the center is half a
     * code below it, and shifting the zero point by that half is exact. */
    float center_shift = planes_used < layout->bits ? 0.5f : 0.0f;

    for (size_t r = 0; r < layout->rows; r++) {
        for (size_t c0 = 0; c0 < layout->cols; c0 += RBE_CHUNK_COLS) {
            rbe_chunk at = rbe_chunk_at(layout, r, c0);
            const uint8_t *plane_rows[16];
            uint16_t codes[RBE_CHUNK_COLS];

            rbe_point_plane_rows(layout, planes, planes_used, &at, plane_rows);
            kernels->unpack(plane_rows, at.plane_bytes, layout->bits, planes_used, codes);

            /* Convert each group segment with its own scale and zero. */
            size_t end = c0 + at.cols;
            for (size_t c = c0; c < end;) {
                size_t g = c / layout->group_size;
                size_t group_end = (g + 1) * layout->group_size;
                size_t stop = group_end < end ? group_end : end;
                size_t at_param = r * layout->groups + g;

                kernels->dequant_f32(codes + (c - c0), stop - c, scale[at_param],
                                     zero[at_param] + center_shift, out + r * layout->cols + c);
                c = stop;
            }
        }
    }
    return RBE_OK;
}

rbe_status rbe_refine_f32(const rbe_layout *layout, const uint8_t *next_plane,
                          unsigned planes_used, const float *scale, const float *zero,
                          float *inout)
{
    const rbe_kernels *kernels;
    rbe_status status = begin(layout, &kernels);
    if (status != RBE_OK) {
        return status;
    }
    if (next_plane == NULL || scale == NULL || zero == NULL || inout == NULL) {
        return RBE_ERR_NULL;
    }
    if (planes_used < 1 || planes_used >= layout->bits) {
        return RBE_ERR_PLANES;
    }
    status = rbe_check_scale_zero(layout, scale, zero);
    if (status != RBE_OK) {
        return status;
    }

    /* c_{P+1} - c_P is plus or minus a quarter of the span 2^(B-P) that the
     * new bit halves; the kernels work in doubled units, 2^(B-P-1). */
    unsigned remaining = layout->bits - planes_used;
    float delta_set = (float)(1u << (remaining - 1));
    float delta_clear = -delta_set;

    for (size_t r = 0; r < layout->rows; r++) {
        for (size_t c0 = 0; c0 < layout->cols; c0 += RBE_CHUNK_COLS) {
            rbe_chunk at = rbe_chunk_at(layout, r, c0);
            const uint8_t *plane_row;
            uint16_t bit[RBE_CHUNK_COLS];

            rbe_point_plane_rows(layout, &next_plane, 1, &at, &plane_row);
            kernels->unpack(&plane_row, at.plane_bytes, 1, 1, bit);

            size_t end = c0 + at.cols;
            for (size_t c = c0; c < end;) {
                size_t g = c / layout->group_size;
                size_t group_end = (g + 1) * layout->group_size;
                size_t stop = group_end < end ? group_end : end;

                kernels->refine_f32(bit + (c - c0), stop - c, scale[r * layout->groups + g],
                                    delta_set, delta_clear, inout + r * layout->cols + c);
                c = stop;
            }
        }
    }
    return RBE_OK;
}

rbe_status rbe_decode_i8(const rbe_layout *layout, const uint8_t *const *planes,
                         unsigned planes_used, int8_t *out)
{
    const rbe_kernels *kernels;
    rbe_status status = begin(layout, &kernels);
    if (status != RBE_OK) {
        return status;
    }
    if (out == NULL) {
        return RBE_ERR_NULL;
    }
    if (planes_used < 1 || planes_used > layout->bits) {
        return RBE_ERR_PLANES;
    }
    if (layout->bits > 8) {
        return RBE_ERR_UNSUPPORTED;
    }
    status = check_planes(planes, planes_used);
    if (status != RBE_OK) {
        return status;
    }

    for (size_t r = 0; r < layout->rows; r++) {
        for (size_t c0 = 0; c0 < layout->cols; c0 += RBE_CHUNK_COLS) {
            rbe_chunk at = rbe_chunk_at(layout, r, c0);
            const uint8_t *plane_rows[16];
            uint16_t codes[RBE_CHUNK_COLS];

            rbe_point_plane_rows(layout, planes, planes_used, &at, plane_rows);
            kernels->unpack(plane_rows, at.plane_bytes, layout->bits, planes_used, codes);
            kernels->dequant_i8(codes, at.cols, layout->bits, out + r * layout->cols + c0);
        }
    }
    return RBE_OK;
}
