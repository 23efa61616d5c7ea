/* JVM-independent operations of the Android bridge. rbe_bridge.h documents them. */
#include "rbe_bridge.h"

#include <stdlib.h>
#include <string.h>

/* Byte positions in model.rbe, as docs/format.md specifies them. */
#define HEADER_BYTES 64u
#define HEADER_TABLE_SIZE 24u
#define HEADER_TABLE_CRC 48u
#define HEADER_CRC 60u
#define HEADER_TENSOR_COUNT 12u
#define TABLE_PLANE_ENDS 128u
#define ENTRY_BYTES 288u
#define ENTRY_BITS 48u
#define ENTRY_PLANE_CRC 224u

static uint32_t read_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t read_u64(const uint8_t *p)
{
    return (uint64_t)read_u32(p) | (uint64_t)read_u32(p + 4) << 32;
}

static void write_u32(uint8_t *p, uint32_t value)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(value >> (8 * i));
    }
}

/* Copies matrix [rows, cols] into its transpose [cols, rows]. */
static void transpose(const float *in, size_t rows, size_t cols, float *out)
{
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            out[c * rows + r] = in[r * cols + c];
        }
    }
}

static float *new_matrix(const rbe_bridge_tensor *tensor)
{
    /* rbe_layout_init checked that rows * cols * 4 fits in size_t. */
    return malloc(tensor->layout.rows * tensor->layout.cols * sizeof(float));
}

int rbe_bridge_tensor_get(const rbe_container *container, uint32_t index,
                          rbe_bridge_tensor *tensor)
{
    if (container == NULL || tensor == NULL) {
        return RBE_ERR_NULL;
    }
    rbe_bridge_tensor t;
    memset(&t, 0, sizeof(t));
    rbe_status status = rbe_container_tensor_info(container, index, &t.info);
    if (status != RBE_OK) {
        return status;
    }

    t.planes_present = t.info.bits < container->planes_available ? t.info.bits
                                                                 : container->planes_available;
    status = rbe_container_tensor_data(container, index, t.planes_present, &t.layout, t.planes,
                                       &t.scale, &t.zero);
    if (status != RBE_OK) {
        return status;
    }
    *tensor = t;
    return RBE_OK;
}

int rbe_bridge_decode(const rbe_bridge_tensor *tensor, const uint8_t *const *planes,
                      unsigned planes_used, float *out)
{
    if (tensor == NULL || planes == NULL || out == NULL) {
        return RBE_ERR_NULL;
    }
    if (tensor->info.layout != RBE_BRIDGE_LAYOUT_KN) {
        return rbe_decode_f32(&tensor->layout, planes, planes_used, tensor->scale, tensor->zero,
                              out);
    }

    float *matrix = new_matrix(tensor);
    if (matrix == NULL) {
        return RBE_BRIDGE_ERR_MEMORY;
    }
    rbe_status status = rbe_decode_f32(&tensor->layout, planes, planes_used, tensor->scale,
                                       tensor->zero, matrix);
    if (status == RBE_OK) {
        transpose(matrix, tensor->layout.rows, tensor->layout.cols, out);
    }
    free(matrix);
    return status;
}

int rbe_bridge_refine(const rbe_bridge_tensor *tensor, const uint8_t *next_plane,
                      unsigned planes_used, float *inout)
{
    if (tensor == NULL || next_plane == NULL || inout == NULL) {
        return RBE_ERR_NULL;
    }
    if (tensor->info.layout != RBE_BRIDGE_LAYOUT_KN) {
        return rbe_refine_f32(&tensor->layout, next_plane, planes_used, tensor->scale,
                              tensor->zero, inout);
    }

    float *matrix = new_matrix(tensor);
    if (matrix == NULL) {
        return RBE_BRIDGE_ERR_MEMORY;
    }
    transpose(inout, tensor->layout.cols, tensor->layout.rows, matrix);
    rbe_status status = rbe_refine_f32(&tensor->layout, next_plane, planes_used, tensor->scale,
                                       tensor->zero, matrix);
    if (status == RBE_OK) {
        transpose(matrix, tensor->layout.rows, tensor->layout.cols, inout);
    }
    free(matrix);
    return status;
}

int rbe_bridge_update(const rbe_bridge_tensor *tensor, uint8_t *const *planes,
                      const float *grad, int8_t *accum, const rbe_update_params *params)
{
    if (tensor == NULL || grad == NULL) {
        return RBE_ERR_NULL;
    }
    if (tensor->info.layout != RBE_BRIDGE_LAYOUT_KN) {
        return rbe_update_upper(&tensor->layout, planes, tensor->scale, grad, accum, params);
    }

    /* The update draws its random numbers by element index, so the whole
     * matrix goes in one call to repeat the Python SDK's result exactly. */
    float *matrix = new_matrix(tensor);
    if (matrix == NULL) {
        return RBE_BRIDGE_ERR_MEMORY;
    }
    transpose(grad, tensor->layout.cols, tensor->layout.rows, matrix);
    rbe_status status = rbe_update_upper(&tensor->layout, planes, tensor->scale, matrix, accum,
                                         params);
    free(matrix);
    return status;
}

/* Returns the table size stored in head, or 0 if the table does not fit. */
static uint64_t table_size_of(const uint8_t *head, size_t head_size)
{
    if (head_size < HEADER_BYTES) {
        return 0;
    }
    uint64_t table_size = read_u64(head + HEADER_TABLE_SIZE);
    if (table_size > head_size - HEADER_BYTES) {
        return 0;
    }
    return table_size;
}

int rbe_bridge_set_plane_crc(uint8_t *head, size_t head_size, uint32_t index,
                             uint32_t plane, uint32_t crc)
{
    if (head == NULL) {
        return RBE_ERR_NULL;
    }
    uint64_t table_size = table_size_of(head, head_size);
    if (table_size == 0) {
        return RBE_ERR_FORMAT;
    }
    uint32_t count = read_u32(head + HEADER_TENSOR_COUNT);
    if (index >= count || plane >= 16) {
        return RBE_ERR_SIZE;
    }

    uint64_t entry = TABLE_PLANE_ENDS + (uint64_t)ENTRY_BYTES * index;
    if (entry + ENTRY_BYTES > table_size) {
        return RBE_ERR_FORMAT;
    }
    uint8_t *e = head + HEADER_BYTES + entry;
    if (plane >= read_u32(e + ENTRY_BITS)) {
        return RBE_ERR_SIZE;
    }
    write_u32(e + ENTRY_PLANE_CRC + 4u * plane, crc);
    return RBE_OK;
}

int rbe_bridge_seal_head(uint8_t *head, size_t head_size)
{
    if (head == NULL) {
        return RBE_ERR_NULL;
    }
    uint64_t table_size = table_size_of(head, head_size);
    if (table_size == 0) {
        return RBE_ERR_FORMAT;
    }

    uint32_t table_crc = 0;
    rbe_crc32c(head + HEADER_BYTES, (size_t)table_size, &table_crc);
    write_u32(head + HEADER_TABLE_CRC, table_crc);

    uint32_t header_crc = 0;
    rbe_crc32c(head, HEADER_CRC, &header_crc);
    write_u32(head + HEADER_CRC, header_crc);
    return RBE_OK;
}

const char *rbe_bridge_message(int status)
{
    if (status == RBE_BRIDGE_ERR_MEMORY) {
        return "out of memory for a temporary buffer of the tensor";
    }
    return rbe_status_message((rbe_status)status);
}
