/*
 * rbe_gemm_f32: validation, kernel choice and the optional split of rows
 * between threads. Each row's result depends only on that row, so any split
 * gives the same bits.
 */
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

rbe_status rbe_check_product_arguments(const rbe_layout *layout, const uint8_t *const *planes,
                                       unsigned planes_used, const float *scale,
                                       const float *zero, const float *in, size_t batch,
                                       const float *out)
{
    if (scale == NULL || zero == NULL || in == NULL || out == NULL || planes == NULL) {
        return RBE_ERR_NULL;
    }
    if (batch == 0 || batch > SIZE_MAX / sizeof(float) / layout->cols ||
        batch > SIZE_MAX / sizeof(float) / layout->rows) {
        return RBE_ERR_SIZE;
    }
    if (planes_used < 1 || planes_used > layout->bits) {
        return RBE_ERR_PLANES;
    }
    for (unsigned p = 0; p < planes_used; p++) {
        if (planes[p] == NULL) {
            return RBE_ERR_NULL;
        }
    }
    return rbe_check_scale_zero(layout, scale, zero);
}

/* The kernel and arguments of one product, for rbe_run_split. */
typedef struct gemm_call {
    const rbe_gemm_args *args;
    rbe_gemm_rows_fn rows_fn;
} gemm_call;

static void run_rows(const void *context, size_t row_begin, size_t row_end)
{
    const gemm_call *call = context;
    call->rows_fn(call->args, row_begin, row_end);
}

/* Bytes past malloc's alignment that let the tables start on a 64-byte line. */
#define LUT_ALIGN 64

/*
 * Allocates and fills the lookup tables and group sums of x, shared by
 * every thread of the call; *memory receives the block to free.
 */
static rbe_status prepare_lookup(rbe_gemm_args *args, void **memory)
{
    const rbe_layout *layout = args->layout;
    size_t per_entry = rbe_gemm_lut_tables_per_row(layout) * RBE_LUT_ENTRIES + layout->groups;

    if (args->batch > (SIZE_MAX - LUT_ALIGN) / sizeof(float) / per_entry) {
        return RBE_ERR_SIZE;
    }
    size_t table_floats = args->batch * rbe_gemm_lut_tables_per_row(layout) * RBE_LUT_ENTRIES;
    *memory = malloc(args->batch * per_entry * sizeof(float) + LUT_ALIGN);
    if (*memory == NULL) {
        return RBE_ERR_MEMORY;
    }

    uintptr_t start = ((uintptr_t)*memory + LUT_ALIGN - 1) & ~(uintptr_t)(LUT_ALIGN - 1);
    float *tables = (float *)start;
    float *x_sums = tables + table_floats;
    rbe_gemm_lut_tables(layout, args->x, args->batch, tables, x_sums);
    args->lut = tables;
    args->lut_x_sums = x_sums;
    return RBE_OK;
}

rbe_status rbe_gemm_f32(const rbe_layout *layout, const uint8_t *const *planes,
                        unsigned planes_used, const float *scale, const float *zero,
                        const float *x, size_t batch, float *y, unsigned threads)
{
    rbe_status status = rbe_layout_check(layout);
    if (status != RBE_OK) {
        return status;
    }
    status = rbe_check_product_arguments(layout, planes, planes_used, scale, zero, x, batch, y);
    if (status != RBE_OK) {
        return status;
    }

    const rbe_kernels *kernels = rbe_kernels_for(layout->isa);
    if (kernels == NULL) {
        return RBE_ERR_ISA;
    }

    /* SIMD kernels walk whole 16-column blocks inside each group. */
    rbe_gemm_rows_fn rows_fn = kernels->gemm_rows;
    if (layout->groups > 1 && layout->group_size % RBE_GEMM_LANES != 0) {
        rows_fn = rbe_gemm_rows_scalar;
    }

    rbe_gemm_args args = {layout, planes, planes_used, scale, zero, x, batch, y, NULL, NULL};
    void *lut_memory = NULL;
    if (rbe_gemm_choose_path(layout, planes_used, batch) == RBE_GEMM_LOOKUP) {
        status = prepare_lookup(&args, &lut_memory);
        if (status != RBE_OK) {
            return status;
        }
    }

    gemm_call call = {&args, rows_fn};
    status = rbe_run_split(run_rows, &call, layout->rows, 1, threads);
    free(lut_memory);
    return status;
}
