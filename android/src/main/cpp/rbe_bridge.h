/*
 * The JVM-independent half of the Android bridge. It looks up a tensor of
 * an opened container and decodes, refines and updates it in the tensor's
 * original axis order, which is what onnxruntime reads and writes. It also
 * patches the checksums of model.rbe when adapted planes are saved.
 * rbe_jni.c converts Java arguments and calls these functions, and the C
 * tests call them directly.
 *
 * Functions return an rbe_status value, or RBE_BRIDGE_ERR_MEMORY when a
 * temporary buffer cannot be allocated.
 */
#ifndef RBE_BRIDGE_H
#define RBE_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "rbe_edge.h"

#define RBE_BRIDGE_ERR_MEMORY (-1)

/* Tensor layouts as stored in model.rbe. */
#define RBE_BRIDGE_LAYOUT_KN 0u
#define RBE_BRIDGE_LAYOUT_NK 1u
#define RBE_BRIDGE_LAYOUT_VECTOR 2u

/* One tensor of an opened container, with pointers into its buffer. */
typedef struct rbe_bridge_tensor {
    rbe_container_tensor info;
    rbe_layout layout;
    const float *scale;
    const float *zero;
    const uint8_t *planes[16];  /* planes 0..planes_present-1 inside the container buffer */
    uint32_t planes_present;    /* min(bits, planes_available) */
} rbe_bridge_tensor;

/* Fills *tensor with entry `index` of an opened container. */
int rbe_bridge_tensor_get(const rbe_container *container, uint32_t index,
                          rbe_bridge_tensor *tensor);

/*
 * Decodes the top planes_used planes into out[rows * cols] in the tensor's
 * original shape, row-major: layout kn ([K, N]) is transposed from the
 * core's [N, K] matrix, the other layouts need no reordering.
 */
int rbe_bridge_decode(const rbe_bridge_tensor *tensor, const uint8_t *const *planes,
                      unsigned planes_used, float *out);

/* Refines out, decoded with planes_used planes, to planes_used + 1 in place. */
int rbe_bridge_refine(const rbe_bridge_tensor *tensor, const uint8_t *next_plane,
                      unsigned planes_used, float *inout);

/*
 * Applies rbe_update_upper with grad given in the tensor's original shape.
 * planes points to all B writable planes, and accum is in the core's
 * [rows, cols] order.
 */
int rbe_bridge_update(const rbe_bridge_tensor *tensor, uint8_t *const *planes,
                      const float *grad, int8_t *accum, const rbe_update_params *params);

/*
 * Stores `crc` as the CRC32C of plane `plane` of entry `index` in head, a
 * copy of the first bytes of model.rbe covering the header and the table.
 * Errors: RBE_ERR_NULL, RBE_ERR_SIZE (head too short, index or plane out of
 * range), RBE_ERR_FORMAT (the table does not fit in head).
 */
int rbe_bridge_set_plane_crc(uint8_t *head, size_t head_size, uint32_t index,
                             uint32_t plane, uint32_t crc);

/* Recomputes the table CRC32C and then the header CRC32C of head. */
int rbe_bridge_seal_head(uint8_t *head, size_t head_size);

/* Returns a message for a status, including RBE_BRIDGE_ERR_MEMORY. */
const char *rbe_bridge_message(int status);

#endif
