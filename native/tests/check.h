/*
 * Minimal test harness for the C core: CHECK records a failure with its
 * location and keeps going, so one run reports every broken case.
 */
#ifndef RBE_CHECK_H
#define RBE_CHECK_H

#include <stdio.h>

#include "rbe_edge.h"

extern int check_passed;
extern int check_failed;

/* Stores in isas (room for 3) the SIMD kernel families this CPU runs; returns their count. */
size_t available_simd_isas(rbe_isa *isas);

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (cond) {                                                                   \
            check_passed++;                                                           \
        } else {                                                                      \
            check_failed++;                                                           \
            if (check_failed <= 50) {                                                 \
                fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
                fprintf(stderr, __VA_ARGS__);                                         \
                fprintf(stderr, "\n");                                                \
            }                                                                         \
        }                                                                             \
    } while (0)

#endif
