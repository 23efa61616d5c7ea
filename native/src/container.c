/*
 * Reader of model.rbe containers (docs/format.md specifies the bytes).
 *
 * The reader validates the header and the whole tensor table before it
 * hands out any pointer, so every offset it returns lies inside the
 * caller's buffer. All integers in the file are little-endian and read byte
 * by byte, which keeps the reader independent of the host's endianness and
 * alignment rules.
 */
#include <string.h>

#include "rbe_edge.h"

#define HEADER_BYTES 64u
#define ENTRY_BYTES 288u
#define PLANE_END_BYTES 128u
#define CHUNK_ALIGN 64u
#define MAX_TENSORS (1u << 24)
#define FORMAT_VERSION 1u

static const uint8_t MAGIC[8] = {'R', 'B', 'E', 'M', 'O', 'D', 'E', 'L'};

/* Entry field offsets, relative to the start of an entry. */
enum {
    ENTRY_NAME_OFFSET = 0,
    ENTRY_NAME_LEN = 4,
    ENTRY_NDIM = 8,
    ENTRY_LAYOUT = 12,
    ENTRY_SHAPE = 16,
    ENTRY_BITS = 48,
    ENTRY_PARAMS_CRC = 52,
    ENTRY_ROWS = 56,
    ENTRY_COLS = 64,
    ENTRY_GROUP_SIZE = 72,
    ENTRY_PARAMS_OFFSET = 80,
    ENTRY_PLANE_BYTES = 88,
    ENTRY_PLANE_OFFSET = 96,
    ENTRY_PLANE_CRC = 224
};

static uint32_t read_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t read_u64(const uint8_t *p)
{
    return (uint64_t)read_u32(p) | ((uint64_t)read_u32(p + 4) << 32);
}

/* ---- CRC32C ---- */

/*
 * Slicing-by-8 tables are built on the stack per call: about 2K table
 * steps, small next to the chunks being checked, and no global state.
 */
static void crc32c_tables(uint32_t table[8][256])
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t crc = n;
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1u) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        table[0][n] = crc;
    }
    for (uint32_t n = 0; n < 256; n++) {
        for (int t = 1; t < 8; t++) {
            uint32_t prev = table[t - 1][n];
            table[t][n] = (prev >> 8) ^ table[0][prev & 0xFFu];
        }
    }
}

rbe_status rbe_crc32c(const void *data, size_t size, uint32_t *crc)
{
    if (crc == NULL || (data == NULL && size > 0)) {
        return RBE_ERR_NULL;
    }
    uint32_t table[8][256];
    crc32c_tables(table);

    const uint8_t *p = (const uint8_t *)data;
    uint32_t value = ~*crc;
    while (size >= 8) {
        uint32_t low = read_u32(p) ^ value;
        uint32_t high = read_u32(p + 4);
        value = table[7][low & 0xFFu] ^ table[6][(low >> 8) & 0xFFu] ^
                table[5][(low >> 16) & 0xFFu] ^ table[4][low >> 24] ^
                table[3][high & 0xFFu] ^ table[2][(high >> 8) & 0xFFu] ^
                table[1][(high >> 16) & 0xFFu] ^ table[0][high >> 24];
        p += 8;
        size -= 8;
    }
    while (size > 0) {
        value = (value >> 8) ^ table[0][(value ^ *p) & 0xFFu];
        p++;
        size--;
    }
    *crc = ~value;
    return RBE_OK;
}

/* Fuzzing builds skip checksum comparisons so the fuzzer reaches the parser. */
static int checksum_matches(const uint8_t *data, uint64_t size, uint32_t expected)
{
    uint32_t crc = 0;
    rbe_crc32c(data, (size_t)size, &crc);
#ifdef RBE_FUZZING
    (void)expected;
    return 1;
#else
    return crc == expected;
#endif
}

/* ---- Table entries ---- */

static uint64_t row_stride_of(uint64_t cols)
{
    return ((cols + 63u) / 64u) * 8u;
}

/* Stores a * b in *out, or returns 0 when the product overflows 64 bits. */
static int multiply_u64(uint64_t a, uint64_t b, uint64_t *out)
{
    if (a != 0 && b > UINT64_MAX / a) {
        return 0;
    }
    *out = a * b;
    return 1;
}

static void parse_entry(const uint8_t *e, rbe_container_tensor *t)
{
    memset(t, 0, sizeof(*t));
    t->name_len = read_u32(e + ENTRY_NAME_LEN);
    t->ndim = read_u32(e + ENTRY_NDIM);
    t->layout = read_u32(e + ENTRY_LAYOUT);
    for (int d = 0; d < 4; d++) {
        t->shape[d] = read_u64(e + ENTRY_SHAPE + 8 * d);
    }
    t->bits = read_u32(e + ENTRY_BITS);
    t->params_crc = read_u32(e + ENTRY_PARAMS_CRC);
    t->rows = read_u64(e + ENTRY_ROWS);
    t->cols = read_u64(e + ENTRY_COLS);
    t->group_size = read_u64(e + ENTRY_GROUP_SIZE);
    t->params_offset = read_u64(e + ENTRY_PARAMS_OFFSET);
    t->plane_bytes = read_u64(e + ENTRY_PLANE_BYTES);
    for (int p = 0; p < 16; p++) {
        t->plane_offset[p] = read_u64(e + ENTRY_PLANE_OFFSET + 8 * p);
        t->plane_crc[p] = read_u32(e + ENTRY_PLANE_CRC + 4 * p);
    }
}

/* Checks that rows and cols follow from shape and layout, without overflow. */
static int shape_matches(const rbe_container_tensor *t)
{
    if (t->ndim < 1 || t->ndim > 4 || t->layout > 2) {
        return 0;
    }
    if ((t->layout == 2) != (t->ndim == 1) || (t->layout == 0 && t->ndim != 2)) {
        return 0;
    }
    for (uint32_t d = 0; d < 4; d++) {
        if ((d < t->ndim) != (t->shape[d] != 0)) {
            return 0;
        }
    }

    uint64_t rows = 1;
    uint64_t cols = 1;
    if (t->layout == 0) {
        rows = t->shape[1];
        cols = t->shape[0];
    } else if (t->layout == 1) {
        rows = t->shape[0];
        for (uint32_t d = 1; d < t->ndim; d++) {
            if (!multiply_u64(cols, t->shape[d], &cols)) {
                return 0;
            }
        }
    } else {
        cols = t->shape[0];
    }
    return rows == t->rows && cols == t->cols;
}

/* Checks one entry on its own; chunk positions are checked by check_chunks. */
static int entry_valid(const rbe_container_tensor *t, uint32_t name_offset, uint32_t string_bytes,
                       uint32_t max_bits, uint64_t *params_bytes)
{
    if (t->name_len == 0 || name_offset > string_bytes ||
        t->name_len > string_bytes - name_offset) {
        return 0;
    }
    if (!shape_matches(t) || t->bits < 2 || t->bits > max_bits) {
        return 0;
    }
    if (t->group_size == 0 || t->cols % t->group_size != 0 || t->cols > UINT64_MAX - 63u) {
        return 0;
    }

    uint64_t plane_bytes;
    uint64_t params;
    if (!multiply_u64(t->rows, row_stride_of(t->cols), &plane_bytes) ||
        plane_bytes != t->plane_bytes) {
        return 0;
    }
    if (!multiply_u64(t->rows, t->cols / t->group_size, &params) ||
        !multiply_u64(params, 8u, &params)) {
        return 0;
    }
    for (uint32_t p = t->bits; p < 16; p++) {
        if (t->plane_offset[p] != 0 || t->plane_crc[p] != 0) {
            return 0;
        }
    }
    *params_bytes = params;
    return 1;
}

/*
 * Places one chunk: aligned, at or after *cursor, ending by `limit`.
 * Monotone placement in the canonical order rules out overlaps.
 */
static int place_chunk(uint64_t offset, uint64_t bytes, uint64_t limit, uint64_t *cursor)
{
    if (offset % CHUNK_ALIGN != 0 || offset < *cursor || offset > limit ||
        bytes > limit - offset) {
        return 0;
    }
    *cursor = offset + bytes;
    return 1;
}

/* ---- Opening ---- */

typedef struct parsed_header {
    uint32_t version;
    uint32_t tensor_count;
    uint32_t max_bits;
    uint32_t string_bytes;
    uint64_t table_size;
    uint64_t data_offset;
    uint64_t file_size;
    uint32_t table_crc;
} parsed_header;

static rbe_status parse_header(const uint8_t *data, size_t size, parsed_header *h)
{
    if (size < HEADER_BYTES) {
        return RBE_ERR_TRUNCATED;
    }
    if (memcmp(data, MAGIC, sizeof(MAGIC)) != 0) {
        return RBE_ERR_FORMAT;
    }
    h->version = read_u32(data + 8);
    if (h->version == 0) {
        return RBE_ERR_FORMAT;
    }
    if (h->version > FORMAT_VERSION) {
        return RBE_ERR_VERSION;
    }
    if (!checksum_matches(data, 60, read_u32(data + 60))) {
        return RBE_ERR_CHECKSUM;
    }

    h->tensor_count = read_u32(data + 12);
    h->max_bits = read_u32(data + 16);
    h->string_bytes = read_u32(data + 20);
    h->table_size = read_u64(data + 24);
    h->data_offset = read_u64(data + 32);
    h->file_size = read_u64(data + 40);
    h->table_crc = read_u32(data + 48);
    if (read_u32(data + 52) != 0 || read_u32(data + 56) != 0) {
        return RBE_ERR_FORMAT;
    }
    if (h->tensor_count > MAX_TENSORS) {
        return RBE_ERR_FORMAT;
    }
    if (h->tensor_count == 0 ? h->max_bits != 0 : (h->max_bits < 2 || h->max_bits > 16)) {
        return RBE_ERR_FORMAT;
    }

    uint64_t table = PLANE_END_BYTES + (uint64_t)h->tensor_count * ENTRY_BYTES + h->string_bytes;
    uint64_t data_offset = (HEADER_BYTES + table + CHUNK_ALIGN - 1) / CHUNK_ALIGN * CHUNK_ALIGN;
    if (h->table_size != table || h->data_offset != data_offset || h->file_size < data_offset) {
        return RBE_ERR_FORMAT;
    }
    if (size > h->file_size) {
        return RBE_ERR_FORMAT;
    }
    if (size < HEADER_BYTES + table) {
        return RBE_ERR_TRUNCATED;
    }
    return RBE_OK;
}

static rbe_status check_plane_ends(const uint8_t *table, const parsed_header *h,
                                   rbe_container *c)
{
    uint64_t previous = h->data_offset;
    for (uint32_t p = 0; p < 16; p++) {
        uint64_t end = read_u64(table + 8 * p);
        c->plane_end[p] = end;
        if (p >= h->max_bits) {
            if (end != 0) {
                return RBE_ERR_FORMAT;
            }
            continue;
        }
        if (end % CHUNK_ALIGN != 0 || end <= previous || end > h->file_size) {
            return RBE_ERR_FORMAT;
        }
        previous = end;
    }
    if (h->max_bits > 0 && c->plane_end[h->max_bits - 1] != h->file_size) {
        return RBE_ERR_FORMAT;
    }
    if (h->max_bits == 0 && h->file_size != h->data_offset) {
        return RBE_ERR_FORMAT;
    }
    return RBE_OK;
}

/* Validates every entry and every chunk position, in plane-major order. */
static rbe_status check_entries(const uint8_t *data, const parsed_header *h,
                                const rbe_container *c)
{
    const uint8_t *entries = data + HEADER_BYTES + PLANE_END_BYTES;
    uint64_t params_limit = h->max_bits > 0 ? c->plane_end[0] : h->file_size;
    uint64_t cursor = h->data_offset;
    rbe_container_tensor t;

    for (uint32_t i = 0; i < h->tensor_count; i++) {
        const uint8_t *e = entries + (size_t)i * ENTRY_BYTES;
        uint64_t params_bytes = 0;
        parse_entry(e, &t);
        if (!entry_valid(&t, read_u32(e + ENTRY_NAME_OFFSET), h->string_bytes, h->max_bits,
                         &params_bytes) ||
            !place_chunk(t.params_offset, params_bytes, params_limit, &cursor)) {
            return RBE_ERR_FORMAT;
        }
    }

    for (uint32_t p = 0; p < h->max_bits; p++) {
        for (uint32_t i = 0; i < h->tensor_count; i++) {
            parse_entry(entries + (size_t)i * ENTRY_BYTES, &t);
            if (p < t.bits && !place_chunk(t.plane_offset[p], t.plane_bytes, c->plane_end[p],
                                           &cursor)) {
                return RBE_ERR_FORMAT;
            }
        }
        cursor = c->plane_end[p];
    }
    return RBE_OK;
}

/* Counts the planes present in a prefix; the prefix must end on a plane boundary. */
static rbe_status count_planes(const parsed_header *h, rbe_container *c, size_t size)
{
    if (h->max_bits == 0) {
        return size == h->file_size ? RBE_OK : RBE_ERR_TRUNCATED;
    }
    uint32_t planes = 0;
    while (planes < h->max_bits && c->plane_end[planes] <= size) {
        planes++;
    }
    if (planes == 0 || c->plane_end[planes - 1] != size) {
        return RBE_ERR_TRUNCATED;
    }
    c->planes_available = planes;
    return RBE_OK;
}

rbe_status rbe_container_open(rbe_container *container, const uint8_t *data, size_t size)
{
    if (container == NULL) {
        return RBE_ERR_NULL;
    }
    memset(container, 0, sizeof(*container));
    if (data == NULL) {
        return RBE_ERR_NULL;
    }

    parsed_header h;
    rbe_status status = parse_header(data, size, &h);
    if (status != RBE_OK) {
        return status;
    }
    if (!checksum_matches(data + HEADER_BYTES, h.table_size, h.table_crc)) {
        return RBE_ERR_CHECKSUM;
    }

    rbe_container c;
    memset(&c, 0, sizeof(c));
    status = check_plane_ends(data + HEADER_BYTES, &h, &c);
    if (status == RBE_OK) {
        status = check_entries(data, &h, &c);
    }
    if (status == RBE_OK) {
        status = count_planes(&h, &c, size);
    }
    if (status != RBE_OK) {
        return status;
    }

    c.data = data;
    c.size = size;
    c.version = h.version;
    c.tensor_count = h.tensor_count;
    c.max_bits = h.max_bits;
    c.file_size = h.file_size;
    c.data_offset = h.data_offset;
    *container = c;
    return RBE_OK;
}

/* ---- Access ---- */

rbe_status rbe_container_tensor_info(const rbe_container *container, uint32_t index,
                                rbe_container_tensor *tensor)
{
    if (container == NULL || tensor == NULL || container->data == NULL) {
        return RBE_ERR_NULL;
    }
    if (index >= container->tensor_count) {
        return RBE_ERR_SIZE;
    }
    const uint8_t *table = container->data + HEADER_BYTES;
    const uint8_t *entry = table + PLANE_END_BYTES + (size_t)index * ENTRY_BYTES;
    const uint8_t *strings = table + PLANE_END_BYTES + (size_t)container->tensor_count * ENTRY_BYTES;

    parse_entry(entry, tensor);
    tensor->name = (const char *)(strings + read_u32(entry + ENTRY_NAME_OFFSET));
    return RBE_OK;
}

static uint32_t planes_of(const rbe_container_tensor *t, uint32_t planes)
{
    return planes < t->bits ? planes : t->bits;
}

rbe_status rbe_container_verify(const rbe_container *container, uint32_t planes)
{
    if (container == NULL || container->data == NULL) {
        return RBE_ERR_NULL;
    }
    if (planes == 0 || planes > container->planes_available) {
        return container->tensor_count == 0 && planes == 0 ? RBE_OK : RBE_ERR_PLANES;
    }

    rbe_container_tensor t;
    for (uint32_t i = 0; i < container->tensor_count; i++) {
        rbe_container_tensor_info(container, i, &t);
        uint64_t params = t.rows * (t.cols / t.group_size) * 8u;
        if (!checksum_matches(container->data + t.params_offset, params, t.params_crc)) {
            return RBE_ERR_CHECKSUM;
        }
        for (uint32_t p = 0; p < planes_of(&t, planes); p++) {
            if (!checksum_matches(container->data + t.plane_offset[p], t.plane_bytes,
                                  t.plane_crc[p])) {
                return RBE_ERR_CHECKSUM;
            }
        }
    }
    return RBE_OK;
}

rbe_status rbe_container_tensor_data(const rbe_container *container, uint32_t index,
                                     uint32_t planes, rbe_layout *layout,
                                     const uint8_t **plane_ptrs, const float **scale,
                                     const float **zero)
{
    if (container == NULL || layout == NULL || plane_ptrs == NULL || scale == NULL ||
        zero == NULL || container->data == NULL) {
        return RBE_ERR_NULL;
    }
    if (index >= container->tensor_count) {
        return RBE_ERR_SIZE;
    }
    if (planes == 0 || planes > container->planes_available) {
        return RBE_ERR_PLANES;
    }

    rbe_container_tensor t;
    rbe_container_tensor_info(container, index, &t);
    if (t.rows > SIZE_MAX || t.cols > SIZE_MAX) {
        return RBE_ERR_SIZE;
    }
    rbe_status status = rbe_layout_init(layout, (size_t)t.rows, (size_t)t.cols, t.bits,
                                        (size_t)t.group_size);
    if (status != RBE_OK) {
        return status;
    }

    uint64_t params = t.rows * (t.cols / t.group_size);
    for (uint32_t p = 0; p < planes_of(&t, planes); p++) {
        plane_ptrs[p] = container->data + t.plane_offset[p];
    }
    *scale = (const float *)(const void *)(container->data + t.params_offset);
    *zero = (const float *)(const void *)(container->data + t.params_offset + params * 4u);
    return RBE_OK;
}
