/*
 * rbe_gemm_f32: validation, kernel choice and the optional split of rows
 * between threads. Each row's result depends only on that row, so any split
 * gives the same bits.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>

#include "internal.h"

#if !defined(_WIN32)
#include <pthread.h>
#define RBE_HAVE_THREADS 1
#endif

#define RBE_MAX_THREADS 256

typedef struct gemm_task {
    const rbe_gemm_args *args;
    rbe_gemm_rows_fn rows_fn;
    size_t row_begin;
    size_t row_end;
} gemm_task;

static rbe_status check_gemm_arguments(const rbe_layout *layout, const uint8_t *const *planes,
                                       unsigned planes_used, const float *scale,
                                       const float *zero, const float *x, size_t batch,
                                       const float *y)
{
    if (scale == NULL || zero == NULL || x == NULL || y == NULL || planes == NULL) {
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

#ifdef RBE_HAVE_THREADS
static void *run_task(void *opaque)
{
    gemm_task *task = opaque;
    task->rows_fn(task->args, task->row_begin, task->row_end);
    return NULL;
}

/* Splits rows into `threads` contiguous ranges; this thread runs the first. */
static rbe_status run_threaded(const rbe_gemm_args *args, rbe_gemm_rows_fn rows_fn,
                               unsigned threads)
{
    size_t rows = args->layout->rows;
    gemm_task tasks[RBE_MAX_THREADS];
    pthread_t handles[RBE_MAX_THREADS];
    int started[RBE_MAX_THREADS] = {0};

    if (threads > rows) {
        threads = (unsigned)rows;
    }
    for (unsigned t = 0; t < threads; t++) {
        tasks[t].args = args;
        tasks[t].rows_fn = rows_fn;
        tasks[t].row_begin = rows * t / threads;
        tasks[t].row_end = rows * (t + 1) / threads;
    }

    /* A thread that cannot start leaves its rows to this thread. */
    for (unsigned t = 1; t < threads; t++) {
        started[t] = pthread_create(&handles[t], NULL, run_task, &tasks[t]) == 0;
    }
    run_task(&tasks[0]);
    for (unsigned t = 1; t < threads; t++) {
        if (started[t]) {
            pthread_join(handles[t], NULL);
        } else {
            run_task(&tasks[t]);
        }
    }
    return RBE_OK;
}
#endif

rbe_status rbe_gemm_f32(const rbe_layout *layout, const uint8_t *const *planes,
                        unsigned planes_used, const float *scale, const float *zero,
                        const float *x, size_t batch, float *y, unsigned threads)
{
    rbe_status status = rbe_layout_check(layout);
    if (status != RBE_OK) {
        return status;
    }
    status = check_gemm_arguments(layout, planes, planes_used, scale, zero, x, batch, y);
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

    rbe_gemm_args args = {layout, planes, planes_used, scale, zero, x, batch, y};
    if (threads > RBE_MAX_THREADS) {
        return RBE_ERR_UNSUPPORTED;
    }
    if (threads <= 1) {
        rows_fn(&args, 0, layout->rows);
        return RBE_OK;
    }
#ifdef RBE_HAVE_THREADS
    return run_threaded(&args, rows_fn, threads);
#else
    return RBE_ERR_UNSUPPORTED;
#endif
}
