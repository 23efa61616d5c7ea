/*
 * rbe_gemm_t_f32, the input gradient of a dense layer:
 *   dx[m, k] = sum_n dy[m, n] * W_P[n, k].
 *
 * Method: the codec's unpack and dequant kernels decode the planes into a
 * float buffer on the stack, one tile of TILE_ROWS rows by up to
 * RBE_CHUNK_COLS columns at a time. A tile kernel then multiplies that tile
 * into dx for the whole batch. Decoding costs a few operations per
 * weight and is shared by every batch entry, while the product is one
 * multiply and one add per weight and batch entry, a plain broadcast-and-add
 * loop over contiguous floats. Masked adds of dy * scale * 2^b per plane
 * (the bit-serial form) would cost a mask and an add per plane and weight
 * and batch entry, about 8 times the vector operations at P = 8. On an AMD
 * EPYC (Zen 4) decoding all 5 M weights of a 4864 x 1024 layer takes about
 * 1.5 ms and the AVX2 product about 4.5 ms at batch 32, one thread.
 *
 * Accumulation order, the same for every kernel, ISA and thread count: each
 * dx[m, k] starts at +0.0 and adds dy[m, n] * W_P[n, k] for n = 0..rows-1 in
 * increasing order, where W_P[n, k] is the float32 value rbe_decode_f32
 * returns, and each product and each sum is rounded to float32 (no fused
 * multiply-add). So dx equals the naive float32 loop over a decoded matrix
 * bit for bit, and its error against exact arithmetic is that of a float32
 * dot product of rows + 1 terms (decoding adds one rounding per weight).
 *
 * Threads split the columns, in multiples of 64 so that every thread reads
 * whole 64-bit words of the planes. Each column's result depends only on
 * that column, so any split gives the same bits.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* Decoded rows per tile: TILE_ROWS * RBE_CHUNK_COLS floats (16 KiB) stay in L1. */
#define TILE_ROWS 16

/* Arguments of one transposed product, validated by rbe_gemm_t_f32. */
typedef struct gemm_t_args {
    const rbe_layout *layout;
    const rbe_kernels *kernels;
    const uint8_t *const *planes;
    unsigned planes_used;
    const float *scale;
    const float *zero;
    const float *dy;
    size_t batch;
    float *dx;
} gemm_t_args;

/*
 * Decodes rows [first_row, first_row + row_count) and columns
 * [first_col, first_col + cols) into tile[r * RBE_CHUNK_COLS + c], exactly
 * as rbe_decode_f32 would. first_col is a multiple of 64.
 */
static void decode_tile(const gemm_t_args *args, size_t first_row, size_t row_count,
                        size_t first_col, size_t cols, float *tile)
{
    const rbe_layout *layout = args->layout;
    float center_shift = args->planes_used < layout->bits ? 0.5f : 0.0f;
    size_t plane_bytes = (cols + 63) / 64 * 8;

    for (size_t r = 0; r < row_count; r++) {
        size_t row = first_row + r;
        const uint8_t *plane_rows[16];
        uint16_t codes[RBE_CHUNK_COLS];
        rbe_chunk at = {row, first_col, cols, plane_bytes};

        rbe_point_plane_rows(layout, args->planes, args->planes_used, &at, plane_rows);
        args->kernels->unpack(plane_rows, plane_bytes, layout->bits, args->planes_used, codes);

        size_t end = first_col + cols;
        for (size_t c = first_col; c < end;) {
            size_t g = c / layout->group_size;
            size_t group_end = (g + 1) * layout->group_size;
            size_t stop = group_end < end ? group_end : end;
            size_t param = row * layout->groups + g;

            args->kernels->dequant_f32(codes + (c - first_col), stop - c, args->scale[param],
                                       args->zero[param] + center_shift,
                                       tile + r * RBE_CHUNK_COLS + (c - first_col));
            c = stop;
        }
    }
}

/* Computes dx for columns [col_begin, col_end) and every batch entry. */
static void gemm_t_columns(const void *context, size_t col_begin, size_t col_end)
{
    const gemm_t_args *args = context;
    const rbe_layout *layout = args->layout;
    float tile[TILE_ROWS * RBE_CHUNK_COLS];

    for (size_t m = 0; m < args->batch; m++) {
        memset(args->dx + m * layout->cols + col_begin, 0, (col_end - col_begin) * sizeof(float));
    }

    /* Rows run innermost so that dx's columns stay in cache across the rows. */
    for (size_t c0 = col_begin; c0 < col_end; c0 += RBE_CHUNK_COLS) {
        size_t cols = col_end - c0 < RBE_CHUNK_COLS ? col_end - c0 : RBE_CHUNK_COLS;

        for (size_t n0 = 0; n0 < layout->rows; n0 += TILE_ROWS) {
            size_t rows = layout->rows - n0 < TILE_ROWS ? layout->rows - n0 : TILE_ROWS;
            rbe_gemm_t_tile step = {args->dy + n0, layout->rows, args->batch, tile,
                                    RBE_CHUNK_COLS, rows, cols, args->dx + c0, layout->cols};

            decode_tile(args, n0, rows, c0, cols, tile);
            args->kernels->gemm_t_tile(&step);
        }
    }
}

rbe_status rbe_gemm_t_f32(const rbe_layout *layout, const uint8_t *const *planes,
                          unsigned planes_used, const float *scale, const float *zero,
                          const float *dy, size_t batch, float *dx, unsigned threads)
{
    rbe_status status = rbe_layout_check(layout);
    if (status != RBE_OK) {
        return status;
    }
    status = rbe_check_product_arguments(layout, planes, planes_used, scale, zero, dy, batch, dx);
    if (status != RBE_OK) {
        return status;
    }

    const rbe_kernels *kernels = rbe_kernels_for(layout->isa);
    if (kernels == NULL) {
        return RBE_ERR_ISA;
    }
    gemm_t_args args = {layout, kernels, planes, planes_used, scale, zero, dy, batch, dx};

    /* Ranges of whole 64-column words, so each thread reads whole plane words. */
    return rbe_run_split(gemm_t_columns, &args, layout->cols, 64, threads);
}
