/* Every codec entry point rejects bad arguments with its documented status. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "rbe_edge.h"

static void check_layout_init(void)
{
    rbe_layout l;

    CHECK(rbe_layout_init(NULL, 1, 8, 8, 0) == RBE_ERR_NULL, "NULL layout");
    CHECK(rbe_layout_init(&l, 0, 8, 8, 0) == RBE_ERR_SIZE, "zero rows");
    CHECK(rbe_layout_init(&l, 1, 0, 8, 0) == RBE_ERR_SIZE, "zero cols");
    CHECK(rbe_layout_init(&l, SIZE_MAX / 2, 8, 8, 0) == RBE_ERR_SIZE, "rows * cols overflow");
    CHECK(rbe_layout_init(&l, 2, SIZE_MAX, 8, 0) == RBE_ERR_SIZE, "cols near SIZE_MAX");
    CHECK(rbe_layout_init(&l, 1, 8, 1, 0) == RBE_ERR_BITS, "bits 1");
    CHECK(rbe_layout_init(&l, 1, 8, 17, 0) == RBE_ERR_BITS, "bits 17");
    CHECK(rbe_layout_init(&l, 1, 8, 8, 3) == RBE_ERR_GROUP, "group 3 of 8");
    CHECK(rbe_layout_init(&l, 1, 8, 8, 16) == RBE_ERR_GROUP, "group above cols");

    CHECK(rbe_layout_init(&l, 3, 65, 8, 0) == RBE_OK, "valid layout");
    CHECK(l.group_size == 65, "per-row group size %zu", l.group_size);
    CHECK(l.groups == 1, "per-row groups %zu", l.groups);
    CHECK(l.row_stride == 16, "row stride %zu", l.row_stride);
    CHECK(l.plane_bytes == 48, "plane bytes %zu", l.plane_bytes);
}

static void check_encode_arguments(void)
{
    rbe_layout l;
    uint16_t codes[16];
    uint8_t data[8][16];
    uint8_t *planes[8];

    for (int p = 0; p < 8; p++) {
        planes[p] = data[p];
    }
    for (int i = 0; i < 16; i++) {
        codes[i] = (uint16_t)(i * 16);
    }
    rbe_layout_init(&l, 2, 8, 8, 0);

    CHECK(rbe_encode(NULL, codes, planes) == RBE_ERR_NULL, "NULL layout");
    CHECK(rbe_encode(&l, NULL, planes) == RBE_ERR_NULL, "NULL codes");
    CHECK(rbe_encode(&l, codes, NULL) == RBE_ERR_NULL, "NULL planes");
    planes[7] = NULL;
    CHECK(rbe_encode(&l, codes, planes) == RBE_ERR_NULL, "NULL plane 7");
    planes[7] = data[7];

    /* An out-of-range code fails before anything is written. */
    memset(data, 0xEE, sizeof(data));
    codes[15] = 256;
    CHECK(rbe_encode(&l, codes, planes) == RBE_ERR_CODE_RANGE, "code 256 with 8 bits");
    CHECK(data[0][0] == 0xEE, "plane 0 written on failure");
    CHECK(data[7][15] == 0xEE, "plane 7 written on failure");
    codes[15] = 255;
    CHECK(rbe_encode(&l, codes, planes) == RBE_OK, "valid encode");

    rbe_layout tampered = l;
    tampered.row_stride = 1;
    CHECK(rbe_encode(&tampered, codes, planes) == RBE_ERR_SIZE, "tampered row_stride");
    tampered = l;
    tampered.isa = (rbe_isa)99;
    CHECK(rbe_encode(&tampered, codes, planes) == RBE_ERR_ISA, "unknown isa");
}

static void check_decode_arguments(void)
{
    rbe_layout l;
    uint8_t data[4][16];
    const uint8_t *planes[4] = {data[0], data[1], data[2], data[3]};
    float scale[2] = {0.5f, 0.25f};
    float zero[2] = {3.0f, 8.0f};
    float out[2 * 16];
    int8_t out_i8[2 * 16];

    memset(data, 0x3C, sizeof(data));
    rbe_layout_init(&l, 2, 16, 4, 0);

    CHECK(rbe_decode_f32(&l, planes, 4, scale, zero, out) == RBE_OK, "valid decode");
    CHECK(rbe_decode_f32(NULL, planes, 4, scale, zero, out) == RBE_ERR_NULL, "NULL layout");
    CHECK(rbe_decode_f32(&l, NULL, 4, scale, zero, out) == RBE_ERR_NULL, "NULL planes");
    CHECK(rbe_decode_f32(&l, planes, 4, NULL, zero, out) == RBE_ERR_NULL, "NULL scale");
    CHECK(rbe_decode_f32(&l, planes, 4, scale, NULL, out) == RBE_ERR_NULL, "NULL zero");
    CHECK(rbe_decode_f32(&l, planes, 4, scale, zero, NULL) == RBE_ERR_NULL, "NULL out");
    CHECK(rbe_decode_f32(&l, planes, 0, scale, zero, out) == RBE_ERR_PLANES, "P = 0");
    CHECK(rbe_decode_f32(&l, planes, 5, scale, zero, out) == RBE_ERR_PLANES, "P > B");

    /* Planes beyond planes_used are never read, so they may be NULL. */
    const uint8_t *two_planes[4] = {data[0], data[1], NULL, NULL};
    CHECK(rbe_decode_f32(&l, two_planes, 2, scale, zero, out) == RBE_OK, "P = 2, rest NULL");
    CHECK(rbe_decode_f32(&l, two_planes, 3, scale, zero, out) == RBE_ERR_NULL, "plane 2 NULL");

    const float bad_scales[] = {0.0f, -1.0f, NAN, INFINITY, FLT_MIN / 4.0f, FLT_MIN, FLT_MAX};
    for (size_t i = 0; i < sizeof(bad_scales) / sizeof(bad_scales[0]); i++) {
        float s[2] = {0.5f, bad_scales[i]};
        float before = out[17];
        CHECK(rbe_decode_f32(&l, planes, 4, s, zero, out) == RBE_ERR_SCALE, "scale %g",
              (double)bad_scales[i]);
        CHECK(out[17] == before, "output written on scale failure");
        CHECK(rbe_refine_f32(&l, planes[1], 1, s, zero, out) == RBE_ERR_SCALE, "refine scale %g",
              (double)bad_scales[i]);
    }

    const float bad_zeros[] = {0.5f, -1.0f, 16.0f, NAN, INFINITY};
    for (size_t i = 0; i < sizeof(bad_zeros) / sizeof(bad_zeros[0]); i++) {
        float z[2] = {0.0f, bad_zeros[i]};
        CHECK(rbe_decode_f32(&l, planes, 4, scale, z, out) == RBE_ERR_ZERO, "zero %g",
              (double)bad_zeros[i]);
        CHECK(rbe_refine_f32(&l, planes[1], 1, scale, z, out) == RBE_ERR_ZERO, "refine zero %g",
              (double)bad_zeros[i]);
    }

    CHECK(rbe_refine_f32(&l, NULL, 1, scale, zero, out) == RBE_ERR_NULL, "refine NULL plane");
    CHECK(rbe_refine_f32(&l, planes[1], 1, scale, zero, NULL) == RBE_ERR_NULL, "refine NULL out");
    CHECK(rbe_refine_f32(&l, planes[0], 0, scale, zero, out) == RBE_ERR_PLANES, "refine P = 0");
    CHECK(rbe_refine_f32(&l, planes[3], 4, scale, zero, out) == RBE_ERR_PLANES, "refine P = B");

    CHECK(rbe_decode_i8(&l, planes, 4, out_i8) == RBE_OK, "valid decode_i8");
    CHECK(rbe_decode_i8(&l, planes, 4, NULL) == RBE_ERR_NULL, "decode_i8 NULL out");
    CHECK(rbe_decode_i8(&l, planes, 0, out_i8) == RBE_ERR_PLANES, "decode_i8 P = 0");
    rbe_layout wide;
    rbe_layout_init(&wide, 2, 16, 9, 0);
    const uint8_t *nine[9] = {data[0], data[1], data[2], data[3], data[0], data[1], data[2],
                              data[3], data[0]};
    CHECK(rbe_decode_i8(&wide, nine, 9, out_i8) == RBE_ERR_UNSUPPORTED, "decode_i8 B = 9");
}

static void check_dispatch_arguments(void)
{
    rbe_isa isa;
    int available;
    const char *name;

    CHECK(rbe_selected_isa(NULL) == RBE_ERR_NULL, "selected_isa NULL");
    CHECK(rbe_selected_isa(&isa) == RBE_OK, "selected_isa");
    CHECK(isa != RBE_ISA_AUTO, "selected_isa reports a concrete family");
    CHECK(rbe_isa_available(RBE_ISA_SCALAR, NULL) == RBE_ERR_NULL, "isa_available NULL");
    CHECK(rbe_isa_available((rbe_isa)42, &available) == RBE_ERR_ISA, "isa_available 42");
    CHECK(rbe_isa_available(RBE_ISA_SCALAR, &available) == RBE_OK, "isa_available scalar");
    CHECK(available, "scalar kernels are always available");
    CHECK(rbe_kernel_name(RBE_KERNEL_ENCODE, RBE_ISA_SCALAR, NULL) == RBE_ERR_NULL, "name NULL");
    CHECK(rbe_kernel_name((rbe_kernel)77, RBE_ISA_SCALAR, &name) == RBE_ERR_UNSUPPORTED,
          "kernel 77");
    CHECK(rbe_kernel_name(RBE_KERNEL_ENCODE, RBE_ISA_SCALAR, &name) == RBE_OK &&
              strcmp(name, "encode_row_scalar") == 0, "scalar encode name");
    CHECK(strlen(rbe_status_message((rbe_status)1234)) > 0, "unknown status message");
}

void test_codec_arguments(void)
{
    check_layout_init();
    check_encode_arguments();
    check_decode_arguments();
    check_dispatch_arguments();
}
