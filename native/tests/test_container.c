/*
 * Container reader: a valid file built here opens and decodes. Every bit flip
 * in the header and table, every truncation, a newer version and corrupted
 * plane data are rejected with their documented status.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rbe_edge.h"

#define ALIGN64(x) (((x) + 63u) / 64u * 64u)

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t crc_of(const uint8_t *data, size_t size)
{
    uint32_t crc = 0;
    rbe_crc32c(data, size, &crc);
    return crc;
}

/* Two tensors: "a" kn [K=70, N=3] with 8 bits, "b" vector [10] with 4 bits. */
typedef struct sample {
    uint8_t *data;
    size_t size;
    size_t table_end;
    size_t plane_end[8];
    uint16_t codes_a[3 * 70];
    uint16_t codes_b[10];
} sample;

typedef struct tensor_spec {
    const char *name;
    uint32_t ndim, layout, bits;
    uint64_t shape[4], rows, cols;
    uint16_t *codes;
} tensor_spec;

static void write_entry(uint8_t *e, const tensor_spec *t, uint32_t name_offset,
                        uint64_t params_offset, const uint64_t *plane_offset,
                        const uint8_t *file)
{
    uint64_t stride = (t->cols + 63) / 64 * 8;
    put_u32(e + 0, name_offset);
    put_u32(e + 4, (uint32_t)strlen(t->name));
    put_u32(e + 8, t->ndim);
    put_u32(e + 12, t->layout);
    for (int d = 0; d < 4; d++) {
        put_u64(e + 16 + 8 * d, t->shape[d]);
    }
    put_u32(e + 48, t->bits);
    put_u32(e + 52, crc_of(file + params_offset, (size_t)(t->rows * 8)));
    put_u64(e + 56, t->rows);
    put_u64(e + 64, t->cols);
    put_u64(e + 72, t->cols);
    put_u64(e + 80, params_offset);
    put_u64(e + 88, t->rows * stride);
    for (uint32_t p = 0; p < t->bits; p++) {
        put_u64(e + 96 + 8 * p, plane_offset[p]);
        put_u32(e + 224 + 4 * p, crc_of(file + plane_offset[p], (size_t)(t->rows * stride)));
    }
}

/* Lays out scales, then planes in plane-major order, then the table and header. */
static void build_sample(sample *s)
{
    tensor_spec t[2] = {
        {"a", 2, 0, 8, {70, 3, 0, 0}, 3, 70, s->codes_a},
        {"b", 1, 2, 4, {10, 0, 0, 0}, 1, 10, s->codes_b},
    };
    for (int i = 0; i < 3 * 70; i++) {
        s->codes_a[i] = (uint16_t)((i * 37) % 256);
    }
    for (int i = 0; i < 10; i++) {
        s->codes_b[i] = (uint16_t)((i * 5) % 16);
    }

    size_t table = 128 + 2 * 288 + 2;
    size_t cursor = ALIGN64(64 + table);
    uint64_t params_offset[2], plane_offset[2][16];
    for (int i = 0; i < 2; i++) {
        params_offset[i] = cursor;
        cursor = ALIGN64(cursor + t[i].rows * 8);
    }
    for (uint32_t p = 0; p < 8; p++) {
        for (int i = 0; i < 2; i++) {
            if (p < t[i].bits) {
                plane_offset[i][p] = cursor;
                cursor = ALIGN64(cursor + t[i].rows * ((t[i].cols + 63) / 64 * 8));
            }
        }
        s->plane_end[p] = cursor;
    }
    s->size = cursor;
    s->table_end = 64 + table;
    s->data = calloc(1, cursor);

    for (int i = 0; i < 2; i++) {
        rbe_layout l;
        uint8_t *planes[16];
        rbe_layout_init(&l, (size_t)t[i].rows, (size_t)t[i].cols, t[i].bits, 0);
        for (uint32_t p = 0; p < t[i].bits; p++) {
            planes[p] = s->data + plane_offset[i][p];
        }
        rbe_encode(&l, t[i].codes, planes);
        for (uint64_t r = 0; r < t[i].rows; r++) {
            float scale = 0.5f, zero = 3.0f;
            memcpy(s->data + params_offset[i] + 4 * r, &scale, 4);
            memcpy(s->data + params_offset[i] + 4 * (t[i].rows + r), &zero, 4);
        }
    }

    uint8_t *tab = s->data + 64;
    for (uint32_t p = 0; p < 8; p++) {
        put_u64(tab + 8 * p, s->plane_end[p]);
    }
    write_entry(tab + 128, &t[0], 0, params_offset[0], plane_offset[0], s->data);
    write_entry(tab + 128 + 288, &t[1], 1, params_offset[1], plane_offset[1], s->data);
    memcpy(tab + 128 + 2 * 288, "ab", 2);

    memcpy(s->data, "RBEMODEL", 8);
    put_u32(s->data + 8, 1);
    put_u32(s->data + 12, 2);
    put_u32(s->data + 16, 8);
    put_u32(s->data + 20, 2);
    put_u64(s->data + 24, table);
    put_u64(s->data + 32, ALIGN64(64 + table));
    put_u64(s->data + 40, s->size);
    put_u32(s->data + 48, crc_of(tab, table));
    put_u32(s->data + 60, crc_of(s->data, 60));
}

static void check_valid_file(const sample *s)
{
    rbe_container c;
    rbe_container_tensor t;

    CHECK(rbe_container_open(&c, s->data, s->size) == RBE_OK, "open a valid file");
    CHECK(c.tensor_count == 2, "tensor_count %u", c.tensor_count);
    CHECK(c.max_bits == 8, "max_bits %u", c.max_bits);
    CHECK(c.planes_available == 8, "planes_available %u", c.planes_available);
    CHECK(rbe_container_verify(&c, 8) == RBE_OK, "verify a valid file");
    CHECK(rbe_container_tensor_info(&c, 1, &t) == RBE_OK, "entry 1");
    CHECK(t.name_len == 1 && t.name[0] == 'b', "entry 1 name");
    CHECK(t.bits == 4, "entry 1 bits %u", t.bits);
    CHECK(t.layout == 2, "entry 1 layout %u", t.layout);
    CHECK(rbe_container_tensor_info(&c, 2, &t) == RBE_ERR_SIZE, "entry index out of range");

    /* Decoding through the reader's pointers gives (q - zero) * scale. */
    rbe_layout layout;
    const uint8_t *planes[16];
    const float *scale, *zero;
    float out[3 * 70];
    CHECK(rbe_container_tensor_data(&c, 0, 8, &layout, planes, &scale, &zero) == RBE_OK,
          "tensor data");
    CHECK(rbe_decode_f32(&layout, planes, 8, scale, zero, out) == RBE_OK, "decode");
    int mismatches = 0;
    for (int i = 0; i < 3 * 70; i++) {
        mismatches += out[i] != ((float)s->codes_a[i] - 3.0f) * 0.5f;
    }
    CHECK(mismatches == 0, "%d decoded values differ", mismatches);
    CHECK(rbe_container_tensor_data(&c, 0, 9, &layout, planes, &scale, &zero) == RBE_ERR_PLANES,
          "planes beyond the file");
}

static void check_every_table_byte(const sample *s)
{
    uint8_t *copy = malloc(s->size);
    rbe_container c;
    int accepted = 0;

    for (size_t i = 0; i < s->table_end; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, s->data, s->size);
            copy[i] ^= (uint8_t)(1u << bit);
            accepted += rbe_container_open(&c, copy, s->size) == RBE_OK;
        }
    }
    CHECK(accepted == 0, "%d single-bit flips in header or table were accepted", accepted);
    free(copy);
}

static void check_plane_flips(const sample *s)
{
    uint8_t *copy = malloc(s->size);
    rbe_container c;
    int undetected = 0;

    /* Flips inside chunks (not alignment padding) must fail verification. */
    for (uint32_t p = 0; p < 8; p++) {
        size_t start = p == 0 ? ALIGN64(s->table_end) : s->plane_end[p - 1];
        memcpy(copy, s->data, s->size);
        copy[start + 3] ^= 0x10;
        CHECK(rbe_container_open(&c, copy, s->size) == RBE_OK, "open with plane %u flipped", p);
        undetected += rbe_container_verify(&c, 8) != RBE_ERR_CHECKSUM;
    }
    CHECK(undetected == 0, "%d plane flips passed verification", undetected);
    free(copy);
}

static void check_truncation(const sample *s)
{
    rbe_container c;
    int wrong = 0;

    for (size_t size = 0; size < s->size; size++) {
        rbe_status status = rbe_container_open(&c, s->data, size);
        int boundary = 0;
        for (int p = 0; p < 8; p++) {
            boundary |= s->plane_end[p] == size;
        }
        if (boundary) {
            wrong += status != RBE_OK;
        } else {
            wrong += status != RBE_ERR_TRUNCATED;
        }
    }
    CHECK(wrong == 0, "%d truncations got the wrong status", wrong);

    CHECK(rbe_container_open(&c, s->data, s->plane_end[2]) == RBE_OK, "prefix of 3 planes");
    CHECK(c.planes_available == 3, "planes in a 3-plane prefix: %u", c.planes_available);
    CHECK(rbe_container_verify(&c, 3) == RBE_OK, "verify a 3-plane prefix");
    CHECK(rbe_container_verify(&c, 4) == RBE_ERR_PLANES, "verify beyond the prefix");
}

static void check_version_and_arguments(const sample *s)
{
    uint8_t *copy = malloc(s->size);
    rbe_container c;
    uint32_t crc = 0;

    memcpy(copy, s->data, s->size);
    put_u32(copy + 8, 2);
    put_u32(copy + 60, crc_of(copy, 60));
    CHECK(rbe_container_open(&c, copy, s->size) == RBE_ERR_VERSION, "newer version");
    memcpy(copy, "NOTMODEL", 8);
    CHECK(rbe_container_open(&c, copy, s->size) == RBE_ERR_FORMAT, "bad magic");

    CHECK(rbe_container_open(NULL, s->data, s->size) == RBE_ERR_NULL, "NULL container");
    CHECK(rbe_container_open(&c, NULL, 0) == RBE_ERR_NULL, "NULL data");
    CHECK(rbe_crc32c(NULL, 0, &crc) == RBE_OK, "empty CRC status");
    CHECK(crc == 0, "empty CRC %08x", crc);
    CHECK(rbe_crc32c("123456789", 9, &crc) == RBE_OK, "CRC32C status");
    CHECK(crc == 0xE3069283u, "CRC32C check value %08x", crc);
    free(copy);
}

void test_container(void)
{
    sample s;
    build_sample(&s);

    check_valid_file(&s);
    check_every_table_byte(&s);
    check_plane_flips(&s);
    check_truncation(&s);
    check_version_and_arguments(&s);
    free(s.data);
}
