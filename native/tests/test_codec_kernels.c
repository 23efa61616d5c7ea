/*
 * Codec kernels against the scalar reference and the center formula, bit
 * for bit, over shapes that hit every tail: K of 1, 7, 8, 9, 63, 64, 65 and
 * 1000, rows of 1, 3 and 64, every B in 2..16 and every P in 1..B.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rbe_edge.h"

static const size_t kCols[] = {1, 7, 8, 9, 63, 64, 65, 1000};
static const size_t kRows[] = {1, 3, 64};
static const size_t kGroupCandidates[] = {0, 1, 3, 8, 100};

static uint32_t rng_state = 12345u;

static uint32_t next_random(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

typedef struct matrix {
    rbe_layout layout;
    uint16_t *codes;
    uint8_t *plane_data;
    uint8_t *planes[16];
    float *scale;
    float *zero;
} matrix;

static void matrix_free(matrix *m)
{
    free(m->codes);
    free(m->plane_data);
    free(m->scale);
    free(m->zero);
}

/* Random codes, scales and zero points; scales include the extremes. */
static int matrix_make(matrix *m, size_t rows, size_t cols, unsigned bits, size_t group)
{
    if (rbe_layout_init(&m->layout, rows, cols, bits, group) != RBE_OK) {
        return 0;
    }

    size_t params = rows * m->layout.groups;
    m->codes = malloc(rows * cols * sizeof(uint16_t));
    m->plane_data = malloc(bits * m->layout.plane_bytes);
    m->scale = malloc(params * sizeof(float));
    m->zero = malloc(params * sizeof(float));
    uint32_t mask = (1u << bits) - 1u;

    for (size_t i = 0; i < rows * cols; i++) {
        m->codes[i] = (uint16_t)(next_random() & mask);
    }
    for (unsigned p = 0; p < bits; p++) {
        m->planes[p] = m->plane_data + p * m->layout.plane_bytes;
    }
    for (size_t i = 0; i < params; i++) {
        m->zero[i] = (float)(next_random() & mask);
        m->scale[i] = 1e-3f + (float)(next_random() % 1000) * 1e-3f;
    }
    m->scale[0] = 2.0f * FLT_MIN;
    if (params > 1) {
        m->scale[params - 1] = FLT_MAX / (float)mask * 0.999f;
    }
    return 1;
}

/* q_P: the top bits plus 2^(B-P-1), half a code above the center c_P. */
static uint16_t expected_code(uint16_t code, unsigned bits, unsigned planes_used)
{
    unsigned shift = bits - planes_used;
    unsigned midpoint = planes_used < bits ? 1u << (shift - 1) : 0u;
    return (uint16_t)(((code >> shift) << shift) + midpoint);
}

static void expected_decode(const matrix *m, unsigned planes_used, float *out)
{
    const rbe_layout *l = &m->layout;
    float center_shift = planes_used < l->bits ? 0.5f : 0.0f;

    for (size_t r = 0; r < l->rows; r++) {
        for (size_t c = 0; c < l->cols; c++) {
            size_t param = r * l->groups + c / l->group_size;
            uint16_t q = expected_code(m->codes[r * l->cols + c], l->bits, planes_used);
            float centered = ((float)q - center_shift) - m->zero[param];
            out[r * l->cols + c] = centered * m->scale[param];
        }
    }
}

static int planes_match_codes(const matrix *m)
{
    const rbe_layout *l = &m->layout;

    for (unsigned p = 0; p < l->bits; p++) {
        for (size_t r = 0; r < l->rows; r++) {
            const uint8_t *row = m->planes[p] + r * l->row_stride;
            for (size_t c = 0; c < l->row_stride * 8; c++) {
                unsigned bit = (row[c / 8] >> (c % 8)) & 1u;
                unsigned want = c < l->cols ? (m->codes[r * l->cols + c] >> (l->bits - 1 - p)) & 1u
                                            : 0u;
                if (bit != want) {
                    return 0;
                }
            }
        }
    }
    return 1;
}

static void check_encode(matrix *m, rbe_isa isa)
{
    size_t bytes = m->layout.bits * m->layout.plane_bytes;
    uint8_t *reference = malloc(bytes);

    memset(m->plane_data, 0xA5, bytes);
    m->layout.isa = RBE_ISA_SCALAR;
    CHECK(rbe_encode(&m->layout, m->codes, m->planes) == RBE_OK, "scalar encode");
    CHECK(planes_match_codes(m), "scalar planes B=%u K=%zu", m->layout.bits, m->layout.cols);
    memcpy(reference, m->plane_data, bytes);

    memset(m->plane_data, 0x5A, bytes);
    m->layout.isa = isa;
    CHECK(rbe_encode(&m->layout, m->codes, m->planes) == RBE_OK, "encode isa %d", isa);
    CHECK(memcmp(reference, m->plane_data, bytes) == 0, "encode isa %d differs: B=%u rows=%zu K=%zu",
          isa, m->layout.bits, m->layout.rows, m->layout.cols);
    free(reference);
}

static void check_decode_and_refine(matrix *m, rbe_isa isa)
{
    const rbe_layout *l = &m->layout;
    size_t count = l->rows * l->cols;
    float *expected = malloc(count * sizeof(float));
    float *scalar = malloc(count * sizeof(float));
    float *simd = malloc(count * sizeof(float));

    for (unsigned p = 1; p <= l->bits; p++) {
        expected_decode(m, p, expected);

        m->layout.isa = RBE_ISA_SCALAR;
        CHECK(rbe_decode_f32(&m->layout, (const uint8_t *const *)m->planes, p, m->scale, m->zero,
                             scalar) == RBE_OK, "scalar decode");
        m->layout.isa = isa;
        CHECK(rbe_decode_f32(&m->layout, (const uint8_t *const *)m->planes, p, m->scale, m->zero,
                             simd) == RBE_OK, "decode isa %d", isa);
        CHECK(memcmp(expected, scalar, count * sizeof(float)) == 0,
              "scalar decode differs from formula: B=%u P=%u rows=%zu K=%zu G=%zu", l->bits, p,
              l->rows, l->cols, l->group_size);
        CHECK(memcmp(scalar, simd, count * sizeof(float)) == 0,
              "decode isa %d differs: B=%u P=%u rows=%zu K=%zu G=%zu", isa, l->bits, p, l->rows,
              l->cols, l->group_size);

        /* Refine the P-plane buffer and compare with a fresh P+1 decode. */
        if (p < l->bits) {
            expected_decode(m, p + 1, expected);
            CHECK(rbe_refine_f32(&m->layout, m->planes[p], p, m->scale, m->zero, simd) == RBE_OK,
                  "refine isa %d", isa);
            CHECK(memcmp(expected, simd, count * sizeof(float)) == 0,
                  "refine isa %d differs from decode: B=%u P=%u rows=%zu K=%zu G=%zu", isa,
                  l->bits, p, l->rows, l->cols, l->group_size);
        }
    }
    free(expected);
    free(scalar);
    free(simd);
}

static void check_decode_i8(matrix *m, rbe_isa isa)
{
    const rbe_layout *l = &m->layout;
    size_t count = l->rows * l->cols;
    int8_t *expected = malloc(count);
    int8_t *actual = malloc(count);

    for (unsigned p = 1; p <= l->bits; p++) {
        for (size_t i = 0; i < count; i++) {
            int q = expected_code(m->codes[i], l->bits, p);
            expected[i] = (int8_t)(q - (1 << (l->bits - 1)));
        }

        m->layout.isa = isa;
        CHECK(rbe_decode_i8(&m->layout, (const uint8_t *const *)m->planes, p, actual) == RBE_OK,
              "decode_i8 isa %d", isa);
        CHECK(memcmp(expected, actual, count) == 0, "decode_i8 isa %d differs: B=%u P=%u K=%zu",
              isa, l->bits, p, l->cols);
    }
    free(expected);
    free(actual);
}

static void check_isa(rbe_isa isa)
{
    for (unsigned bits = 2; bits <= 16; bits++) {
        for (size_t ci = 0; ci < sizeof(kCols) / sizeof(kCols[0]); ci++) {
            for (size_t ri = 0; ri < sizeof(kRows) / sizeof(kRows[0]); ri++) {
                for (size_t gi = 0; gi < sizeof(kGroupCandidates) / sizeof(kGroupCandidates[0]);
                     gi++) {
                    size_t group = kGroupCandidates[gi];
                    if (group != 0 && (group >= kCols[ci] || kCols[ci] % group != 0)) {
                        continue;
                    }

                    matrix m;
                    CHECK(matrix_make(&m, kRows[ri], kCols[ci], bits, group), "matrix_make");
                    check_encode(&m, isa);
                    check_decode_and_refine(&m, isa);
                    if (bits <= 8) {
                        check_decode_i8(&m, isa);
                    }
                    matrix_free(&m);
                }
            }
        }
    }
}

void test_codec_kernels(void)
{
    const rbe_isa candidates[] = {RBE_ISA_SCALAR, RBE_ISA_AVX2, RBE_ISA_NEON};
    int simd_tested = 0;

    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        int available = 0;
        CHECK(rbe_isa_available(candidates[i], &available) == RBE_OK, "isa_available");
        if (!available) {
            continue;
        }
        check_isa(candidates[i]);
        simd_tested += candidates[i] != RBE_ISA_SCALAR;
    }

    const char *name = NULL;
    CHECK(rbe_kernel_name(RBE_KERNEL_UNPACK, RBE_ISA_AUTO, &name) == RBE_OK && name != NULL,
          "kernel name");
    printf("codec kernels: %d SIMD kernel families checked, auto unpack kernel %s\n",
           simd_tested, name ? name : "(none)");
    if (getenv("RBE_REQUIRE_SIMD") != NULL) {
        CHECK(simd_tested > 0, "RBE_REQUIRE_SIMD is set but no SIMD kernel family ran");
    }
}
