/*
 * Tests of the JVM-independent bridge (rbe_bridge.c) on the bundles written
 * by src/test/python/make_fixtures.py: decode, refine and update in the
 * tensors' original axis order must equal the Python SDK bit for bit, and
 * patched checksums must reopen. Built natively and for arm64 and armv7,
 * where it runs under qemu-user.
 *
 * Usage: test_bridge FIXTURES_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rbe_bridge.h"

static int passed;
static int failed;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        if (cond) {                                                                   \
            passed++;                                                                 \
        } else {                                                                      \
            failed++;                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, "\n");                                                    \
        }                                                                             \
    } while (0)

/* Reads a whole file into a buffer aligned for floats; exits if it cannot. */
static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        fprintf(stderr, "cannot open %s; run make_fixtures.py first\n", path);
        exit(2);
    }
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    uint8_t *data = malloc(length > 0 ? (size_t)length : 1u);
    if (data == NULL || fread(data, 1, (size_t)length, file) != (size_t)length) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(file);
    *size = (size_t)length;
    return data;
}

/* Compares a decoded buffer with a little-endian float32 reference file. */
static int same_as_file(const float *values, size_t count, const char *path)
{
    size_t size;
    uint8_t *expected = read_file(path, &size);
    int same = size == count * sizeof(float) && memcmp(values, expected, size) == 0;
    free(expected);
    return same;
}

static void test_decode_and_refine(const char *fixtures, const char *bundle)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/model.rbe", fixtures, bundle);
    size_t size;
    uint8_t *data = read_file(path, &size);
    rbe_container container;
    CHECK(rbe_container_open(&container, data, size) == RBE_OK, "%s opens", path);

    for (uint32_t i = 0; i < container.tensor_count; i++) {
        rbe_bridge_tensor t;
        CHECK(rbe_bridge_tensor_get(&container, i, &t) == RBE_OK, "%s tensor %u", bundle, i);
        size_t count = t.layout.rows * t.layout.cols;
        float *decoded = malloc(count * sizeof(float));
        float *refined = malloc(count * sizeof(float));

        for (unsigned p = 1; p <= t.planes_present; p++) {
            snprintf(path, sizeof(path), "%s/%s/ref/%u.p%u.f32", fixtures, bundle, i, p);
            CHECK(rbe_bridge_decode(&t, t.planes, p, decoded) == RBE_OK, "%s", path);
            CHECK(same_as_file(decoded, count, path), "decode differs from %s", path);
            if (p == 1) {
                memcpy(refined, decoded, count * sizeof(float));
            } else {
                CHECK(rbe_bridge_refine(&t, t.planes[p - 1], p - 1, refined) == RBE_OK, "%s", path);
                CHECK(same_as_file(refined, count, path), "refine differs from %s", path);
            }
        }
        CHECK(rbe_bridge_decode(&t, t.planes, 0, decoded) == RBE_ERR_PLANES, "0 planes rejected");
        CHECK(rbe_bridge_decode(&t, NULL, 1, decoded) == RBE_ERR_NULL, "NULL planes rejected");
        CHECK(rbe_bridge_refine(&t, t.planes[0], t.info.bits, refined) == RBE_ERR_PLANES,
              "refine past B rejected");
        free(decoded);
        free(refined);
    }
    CHECK(rbe_bridge_tensor_get(&container, container.tensor_count, &(rbe_bridge_tensor){0}) ==
              RBE_ERR_SIZE, "index past the table rejected");
    free(data);
}

/* Replays the accumulate-mode cases of update/cases.txt and compares with Python. */
static void test_update(const char *fixtures)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/mlp/model.rbe", fixtures);
    size_t size;
    uint8_t *data = read_file(path, &size);
    rbe_container container;
    CHECK(rbe_container_open(&container, data, size) == RBE_OK, "%s opens", path);

    snprintf(path, sizeof(path), "%s/update/cases.txt", fixtures);
    FILE *cases = fopen(path, "r");
    CHECK(cases != NULL, "%s opens", path);
    unsigned index, upper;
    unsigned long long seed;
    char mode[32];
    double rate;
    while (cases != NULL && fscanf(cases, "%u %31s %u %llu %la", &index, mode, &upper, &seed,
                                   &rate) == 5) {
        rbe_bridge_tensor t;
        CHECK(rbe_bridge_tensor_get(&container, index, &t) == RBE_OK, "tensor %u", index);
        size_t count = t.layout.rows * t.layout.cols;
        size_t plane_bytes = t.layout.plane_bytes;
        uint8_t *copy = malloc(plane_bytes * t.info.bits);
        uint8_t *planes[16];
        for (unsigned p = 0; p < t.info.bits; p++) {
            planes[p] = copy + p * plane_bytes;
            memcpy(planes[p], t.planes[p], plane_bytes);
        }
        int accumulate = strcmp(mode, "accumulate") == 0;
        int8_t *accum = accumulate ? calloc(count, 1) : NULL;
        float *decoded = malloc(count * sizeof(float));

        rbe_update_params params = {upper, accumulate ? RBE_UPDATE_ACCUMULATE : RBE_UPDATE_SIGN,
                                    (float)rate, seed, 0};
        for (unsigned step = 0; step < 2; step++) {
            snprintf(path, sizeof(path), "%s/update/%u.%s.grad%u.f32", fixtures, index, mode, step);
            size_t grad_size;
            float *grad = (float *)(void *)read_file(path, &grad_size);
            params.step = step;
            CHECK(rbe_bridge_update(&t, planes, grad, accum, &params) == RBE_OK, "%s", path);
            free(grad);
        }
        rbe_bridge_decode(&t, (const uint8_t *const *)planes, t.info.bits, decoded);
        snprintf(path, sizeof(path), "%s/update/%u.%s.updated.f32", fixtures, index, mode);
        CHECK(same_as_file(decoded, count, path), "update differs from %s", path);

        if (accumulate) {
            CHECK(rbe_fold_lsb(&t.layout, planes, accum, upper) == RBE_OK, "fold %u", index);
        }
        rbe_bridge_decode(&t, (const uint8_t *const *)planes, t.info.bits, decoded);
        snprintf(path, sizeof(path), "%s/update/%u.%s.folded.f32", fixtures, index, mode);
        CHECK(same_as_file(decoded, count, path), "fold differs from %s", path);
        free(copy);
        free(accum);
        free(decoded);
    }
    if (cases != NULL) {
        fclose(cases);
    }
    free(data);
}

/* Changes one plane, patches its CRC32C and checks that the file reopens and verifies. */
static void test_patch_checksums(const char *fixtures)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/cnn/model.rbe", fixtures);
    size_t size;
    uint8_t *data = read_file(path, &size);
    rbe_container container;
    CHECK(rbe_container_open(&container, data, size) == RBE_OK, "%s opens", path);
    rbe_bridge_tensor t;
    rbe_bridge_tensor_get(&container, 1, &t);
    size_t offset = (size_t)t.info.plane_offset[2];
    size_t head_size = (size_t)container.data_offset;

    data[offset] ^= 0x5a;
    CHECK(rbe_container_verify(&container, container.planes_available) == RBE_ERR_CHECKSUM,
          "a changed plane fails verification before the patch");
    uint32_t crc = 0;
    rbe_crc32c(data + offset, (size_t)t.info.plane_bytes, &crc);
    CHECK(rbe_bridge_set_plane_crc(data, head_size, 1, 2, crc) == RBE_OK, "patch plane 2");
    CHECK(rbe_container_open(&container, data, size) == RBE_ERR_CHECKSUM,
          "an unsealed table is rejected");
    CHECK(rbe_bridge_seal_head(data, head_size) == RBE_OK, "seal");
    CHECK(rbe_container_open(&container, data, size) == RBE_OK, "the patched file reopens");
    CHECK(rbe_container_verify(&container, container.planes_available) == RBE_OK,
          "the patched file verifies");

    CHECK(rbe_bridge_set_plane_crc(data, head_size, 1, t.info.bits, crc) == RBE_ERR_SIZE,
          "plane past B rejected");
    CHECK(rbe_bridge_set_plane_crc(data, head_size, 2, 0, crc) == RBE_ERR_SIZE,
          "index past the table rejected");
    CHECK(rbe_bridge_set_plane_crc(data, 100, 0, 0, crc) == RBE_ERR_FORMAT,
          "a head shorter than the table rejected");
    CHECK(rbe_bridge_seal_head(data, 63) == RBE_ERR_FORMAT, "a head shorter than 64 bytes rejected");
    CHECK(rbe_bridge_seal_head(NULL, head_size) == RBE_ERR_NULL, "NULL head rejected");
    free(data);
}

/* With RBE_REQUIRE_SIMD=1, fails when the core fell back to scalar kernels. */
static void test_selected_isa(void)
{
    rbe_isa isa = RBE_ISA_SCALAR;
    const char *name = "";
    CHECK(rbe_selected_isa(&isa) == RBE_OK, "rbe_selected_isa");
    CHECK(rbe_kernel_name(RBE_KERNEL_DEQUANT_F32, RBE_ISA_AUTO, &name) == RBE_OK, "kernel name");
    printf("test_bridge: decoding with %s\n", name);
    const char *required = getenv("RBE_REQUIRE_SIMD");
    if (required != NULL && strcmp(required, "1") == 0) {
        CHECK(isa != RBE_ISA_SCALAR, "RBE_REQUIRE_SIMD=1 but the scalar kernels were selected");
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    test_selected_isa();
    test_decode_and_refine(argv[1], "mlp");
    test_decode_and_refine(argv[1], "cnn");
    test_decode_and_refine(argv[1], "mlp_prefix");
    test_update(argv[1]);
    test_patch_checksums(argv[1]);

    printf("test_bridge: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
