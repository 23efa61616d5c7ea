/*
 * Splitting one call's work between threads started for that call. The
 * products use it; no thread or pool outlives the call.
 */
#define _POSIX_C_SOURCE 200809L

#include "internal.h"

#if !defined(_WIN32)
#include <pthread.h>
#define RBE_HAVE_THREADS 1
#endif

#ifdef RBE_HAVE_THREADS
typedef struct range_task {
    rbe_range_fn fn;
    const void *context;
    size_t begin;
    size_t end;
} range_task;

static void *run_task(void *opaque)
{
    range_task *task = opaque;
    if (task->begin < task->end) {
        task->fn(task->context, task->begin, task->end);
    }
    return NULL;
}

static size_t at_most(size_t value, size_t limit)
{
    return value < limit ? value : limit;
}

static void run_threaded(rbe_range_fn fn, const void *context, size_t count, size_t granule,
                         unsigned threads)
{
    size_t units = (count + granule - 1) / granule;
    range_task tasks[RBE_MAX_THREADS] = {{NULL, NULL, 0, 0}};
    pthread_t handles[RBE_MAX_THREADS];
    int started[RBE_MAX_THREADS] = {0};

    if (threads > units) {
        threads = (unsigned)units;
    }
    for (unsigned t = 0; t < threads; t++) {
        tasks[t].fn = fn;
        tasks[t].context = context;
        tasks[t].begin = at_most(units * t / threads * granule, count);
        tasks[t].end = at_most(units * (t + 1) / threads * granule, count);
    }

    /* A thread that cannot start leaves its range to this thread. */
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
}
#endif

rbe_status rbe_run_split(rbe_range_fn fn, const void *context, size_t count, size_t granule,
                         unsigned threads)
{
    if (threads > RBE_MAX_THREADS) {
        return RBE_ERR_UNSUPPORTED;
    }
    if (threads <= 1) {
        fn(context, 0, count);
        return RBE_OK;
    }
#ifdef RBE_HAVE_THREADS
    run_threaded(fn, context, count, granule, threads);
    return RBE_OK;
#else
    return RBE_ERR_UNSUPPORTED;
#endif
}
