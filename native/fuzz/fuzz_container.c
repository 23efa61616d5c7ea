/*
 * libFuzzer target for the container reader. Built with -DRBE_FUZZING, which
 * makes checksum comparisons pass so that mutated inputs reach the parser;
 * AddressSanitizer and UndefinedBehaviorSanitizer catch any read outside the
 * buffer. Every accepted tensor is decoded when it is small.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rbe_edge.h"

static void decode_small_tensor(const rbe_container *c, uint32_t index)
{
    rbe_layout layout;
    const uint8_t *planes[16];
    const float *scale;
    const float *zero;
    if (rbe_container_tensor_data(c, index, c->planes_available, &layout, planes, &scale,
                                  &zero) != RBE_OK) {
        return;
    }
    if (layout.rows * layout.cols > 4096) {
        return;
    }
    /* The file's floats may sit at any 4-byte offset; decode from aligned copies. */
    size_t params = layout.rows * layout.groups;
    float *scale_copy = malloc(params * sizeof(float));
    float *zero_copy = malloc(params * sizeof(float));
    float *out = malloc(layout.rows * layout.cols * sizeof(float));
    if (scale_copy != NULL && zero_copy != NULL && out != NULL) {
        memcpy(scale_copy, scale, params * sizeof(float));
        memcpy(zero_copy, zero, params * sizeof(float));
        unsigned used = c->planes_available < layout.bits ? c->planes_available : layout.bits;
        rbe_decode_f32(&layout, planes, used, scale_copy, zero_copy, out);
    }
    free(scale_copy);
    free(zero_copy);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rbe_container c;
    if (rbe_container_open(&c, data, size) != RBE_OK) {
        return 0;
    }
    rbe_container_verify(&c, c.planes_available);
    for (uint32_t i = 0; i < c.tensor_count && i < 64; i++) {
        rbe_container_tensor t;
        rbe_container_tensor_info(&c, i, &t);
        decode_small_tensor(&c, i);
    }
    return 0;
}
