/*
 * Transposed product (rbe_gemm_t_f32). The scalar reference equals the
 * documented float32 loop over the decoded matrix bit for bit and stays
 * within the float32 dot-product bound of the exact result. Every kernel
 * family and thread count equals the scalar reference bit for bit. Shapes
 * cover column tails around 16, 64 and 256, row tails around the decoded
 * tile of 16 rows, batches 1 to 33, and per-row and grouped scales.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rbe_edge.h"

static const unsigned kBits[] = {2, 5, 8, 16};
static const size_t kCols[] = {1, 7, 16, 33, 64, 65, 130, 257, 300};
static const size_t kRows[] = {1, 3, 16, 17, 40};
static const size_t kBatches[] = {1, 2, 5, 8, 33};

static uint32_t rng = 9001u;

static uint32_t next_random(void)
{
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

static float random_float(void)
{
    return ((float)(next_random() % 20001) - 10000.0f) / 5000.0f;
}

typedef struct problem {
    rbe_layout layout;
    uint16_t *codes;
    uint8_t *plane_data;
    const uint8_t *planes[16];
    float *scale;
    float *zero;
    float *dy;
    size_t batch;
} problem;

static void problem_make(problem *pr, size_t rows, size_t cols, unsigned bits, size_t group,
                         size_t batch)
{
    CHECK(rbe_layout_init(&pr->layout, rows, cols, bits, group) == RBE_OK,
          "layout rows=%zu cols=%zu bits=%u group=%zu", rows, cols, bits, group);
    size_t params = rows * pr->layout.groups;
    uint8_t *writable[16];

    pr->batch = batch;
    pr->codes = malloc(rows * cols * sizeof(uint16_t));
    pr->plane_data = malloc(bits * pr->layout.plane_bytes);
    pr->scale = malloc(params * sizeof(float));
    pr->zero = malloc(params * sizeof(float));
    pr->dy = malloc(batch * rows * sizeof(float));
    for (size_t i = 0; i < rows * cols; i++) {
        pr->codes[i] = (uint16_t)(next_random() & ((1u << bits) - 1u));
    }
    for (unsigned p = 0; p < bits; p++) {
        writable[p] = pr->plane_data + p * pr->layout.plane_bytes;
        pr->planes[p] = writable[p];
    }
    rbe_encode(&pr->layout, pr->codes, writable);
    for (size_t i = 0; i < params; i++) {
        pr->scale[i] = 1e-3f * (float)(1 + next_random() % 1000);
        pr->zero[i] = (float)(next_random() & ((1u << bits) - 1u));
    }
    for (size_t i = 0; i < batch * rows; i++) {
        pr->dy[i] = random_float();
    }
}

static void problem_free(problem *pr)
{
    free(pr->codes);
    free(pr->plane_data);
    free(pr->scale);
    free(pr->zero);
    free(pr->dy);
}

/* The exact decoded weight (c_P - zero) * scale, in double. */
static double exact_weight(const problem *pr, size_t row, size_t col, unsigned planes_used)
{
    const rbe_layout *l = &pr->layout;
    unsigned shift = l->bits - planes_used;
    unsigned code = pr->codes[row * l->cols + col];
    double center = (double)((code >> shift) << shift);
    size_t param = row * l->groups + col / l->group_size;

    if (planes_used < l->bits) {
        center += ((double)(1u << shift) - 1.0) / 2.0;
    }
    return (center - pr->zero[param]) * pr->scale[param];
}

/* The documented order: a naive float32 loop over rbe_decode_f32's output. */
static void naive_float32(const problem *pr, unsigned planes_used, float *dx)
{
    const rbe_layout *l = &pr->layout;
    float *decoded = malloc(l->rows * l->cols * sizeof(float));
    rbe_layout plain = *l;

    plain.isa = RBE_ISA_SCALAR;
    CHECK(rbe_decode_f32(&plain, pr->planes, planes_used, pr->scale, pr->zero, decoded) ==
          RBE_OK, "decode for the naive loop");
    for (size_t m = 0; m < pr->batch; m++) {
        for (size_t k = 0; k < l->cols; k++) {
            float sum = 0.0f;
            for (size_t n = 0; n < l->rows; n++) {
                float product = pr->dy[m * l->rows + n] * decoded[n * l->cols + k];
                sum = sum + product;
            }
            dx[m * l->cols + k] = sum;
        }
    }
    free(decoded);
}

/*
 * Checks |dx - exact| <= gamma(rows + 1) * sum_n |dy[m, n] * W[n, k]|, the
 * standard bound of a float32 dot product of `rows` terms (gamma(n) =
 * n u / (1 - n u), u = 2^-24), with one more rounding for decoding W.
 */
static int within_float32_bound(const problem *pr, unsigned planes_used, const float *dx)
{
    const rbe_layout *l = &pr->layout;
    double u = ldexp(1.0, -24);
    double chain = (double)l->rows + 1.0;
    double gamma = chain * u / (1.0 - chain * u);

    for (size_t m = 0; m < pr->batch; m++) {
        for (size_t k = 0; k < l->cols; k++) {
            double exact = 0.0;
            double magnitude = 0.0;
            for (size_t n = 0; n < l->rows; n++) {
                double term = pr->dy[m * l->rows + n] * exact_weight(pr, n, k, planes_used);
                exact += term;
                magnitude += fabs(term);
            }
            double error = fabs((double)dx[m * l->cols + k] - exact);
            if (error > gamma * magnitude + 1e-30) {
                fprintf(stderr, "  dx[%zu,%zu] = %.9g, exact %.9g, error %.3g > bound %.3g\n", m,
                        k, (double)dx[m * l->cols + k], exact, error, gamma * magnitude);
                return 0;
            }
        }
    }
    return 1;
}

static void check_problem(problem *pr, const rbe_isa *isas, size_t isa_count)
{
    const rbe_layout *l = &pr->layout;
    size_t count = pr->batch * l->cols;
    float *reference = malloc(count * sizeof(float));
    float *naive = malloc(count * sizeof(float));
    float *actual = malloc(count * sizeof(float));

    for (unsigned p = 1; p <= l->bits; p++) {
        pr->layout.isa = RBE_ISA_SCALAR;
        CHECK(rbe_gemm_t_f32(&pr->layout, pr->planes, p, pr->scale, pr->zero, pr->dy, pr->batch,
                             reference, 1) == RBE_OK, "scalar gemm_t");
        naive_float32(pr, p, naive);
        CHECK(memcmp(reference, naive, count * sizeof(float)) == 0,
              "scalar gemm_t differs from the documented loop: B=%u P=%u rows=%zu K=%zu G=%zu "
              "M=%zu", l->bits, p, l->rows, l->cols, l->group_size, pr->batch);
        CHECK(within_float32_bound(pr, p, reference),
              "scalar gemm_t outside the float32 bound: B=%u P=%u rows=%zu K=%zu G=%zu M=%zu",
              l->bits, p, l->rows, l->cols, l->group_size, pr->batch);

        for (size_t i = 0; i <= isa_count; i++) {
            for (unsigned threads = 1; threads <= 3; threads++) {
                if (i == 0 && threads == 1) {
                    continue;
                }
                memset(actual, 0xFF, count * sizeof(float));
                pr->layout.isa = i == 0 ? RBE_ISA_SCALAR : isas[i - 1];
                CHECK(rbe_gemm_t_f32(&pr->layout, pr->planes, p, pr->scale, pr->zero, pr->dy,
                                     pr->batch, actual, threads) == RBE_OK,
                      "gemm_t isa %d", pr->layout.isa);
                CHECK(memcmp(reference, actual, count * sizeof(float)) == 0,
                      "gemm_t isa %d threads %u differs from scalar: B=%u P=%u rows=%zu K=%zu "
                      "G=%zu M=%zu", pr->layout.isa, threads, l->bits, p, l->rows, l->cols,
                      l->group_size, pr->batch);
            }
        }
    }
    free(reference);
    free(naive);
    free(actual);
}

/* Runs a call that must fail and checks that it left dx untouched. */
#define CHECK_FAILS(call, expected, what)                                                  \
    do {                                                                                   \
        memset(dx, 0x5A, sizeof(dx));                                                      \
        CHECK((call) == (expected), "%s", what);                                           \
        CHECK(memcmp(dx, sentinel, sizeof(dx)) == 0, "dx written by a failed call: %s", what); \
    } while (0)

static void check_arguments(void)
{
    problem pr;
    float dx[2 * 32];
    unsigned char sentinel[sizeof(dx)];

    memset(sentinel, 0x5A, sizeof(sentinel));
    problem_make(&pr, 4, 32, 8, 16, 2);
    rbe_layout *l = &pr.layout;

    CHECK_FAILS(rbe_gemm_t_f32(NULL, pr.planes, 8, pr.scale, pr.zero, pr.dy, 2, dx, 1),
                RBE_ERR_NULL, "NULL layout");
    CHECK_FAILS(rbe_gemm_t_f32(l, NULL, 8, pr.scale, pr.zero, pr.dy, 2, dx, 1), RBE_ERR_NULL,
                "NULL planes");
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, NULL, pr.zero, pr.dy, 2, dx, 1), RBE_ERR_NULL,
                "NULL scale");
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, NULL, pr.dy, 2, dx, 1), RBE_ERR_NULL,
                "NULL zero");
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, NULL, 2, dx, 1), RBE_ERR_NULL,
                "NULL dy");
    CHECK(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, pr.dy, 2, NULL, 1) == RBE_ERR_NULL,
          "NULL dx");
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, pr.dy, 0, dx, 1), RBE_ERR_SIZE,
                "batch 0");
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, pr.dy, SIZE_MAX / 8, dx, 1),
                RBE_ERR_SIZE, "batch overflow");
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 0, pr.scale, pr.zero, pr.dy, 2, dx, 1),
                RBE_ERR_PLANES, "P = 0");
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 9, pr.scale, pr.zero, pr.dy, 2, dx, 1),
                RBE_ERR_PLANES, "P = 9");
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, pr.dy, 2, dx, 1000),
                RBE_ERR_UNSUPPORTED, "1000 threads");

    const uint8_t *saved_plane = pr.planes[5];
    pr.planes[5] = NULL;
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, pr.dy, 2, dx, 1),
                RBE_ERR_NULL, "NULL plane 5");
    CHECK(rbe_gemm_t_f32(l, pr.planes, 5, pr.scale, pr.zero, pr.dy, 2, dx, 1) == RBE_OK,
          "plane 5 unused with P = 5");
    pr.planes[5] = saved_plane;

    float saved = pr.scale[3];
    pr.scale[3] = -1.0f;
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, pr.dy, 2, dx, 1),
                RBE_ERR_SCALE, "negative scale");
    pr.scale[3] = saved;
    saved = pr.zero[2];
    pr.zero[2] = 0.5f;
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, pr.dy, 2, dx, 1),
                RBE_ERR_ZERO, "fractional zero point");
    pr.zero[2] = saved;

    l->rows = 5;
    CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, pr.dy, 2, dx, 1),
                RBE_ERR_SIZE, "edited layout");
    l->rows = 4;

    int available = 1;
    rbe_isa missing = RBE_ISA_NEON;
#if defined(__aarch64__) || defined(__arm__)
    missing = RBE_ISA_AVX2;
#endif
    rbe_isa_available(missing, &available);
    if (!available) {
        l->isa = missing;
        CHECK_FAILS(rbe_gemm_t_f32(l, pr.planes, 8, pr.scale, pr.zero, pr.dy, 2, dx, 1),
                    RBE_ERR_ISA, "unavailable isa");
        l->isa = RBE_ISA_AUTO;
    }
    problem_free(&pr);
}

void test_gemm_t(void)
{
    rbe_isa isas[3];
    size_t isa_count = available_simd_isas(isas);
    size_t cases = 0;

    check_arguments();
    for (size_t bi = 0; bi < sizeof(kBits) / sizeof(kBits[0]); bi++) {
        for (size_t ci = 0; ci < sizeof(kCols) / sizeof(kCols[0]); ci++) {
            for (size_t ri = 0; ri < sizeof(kRows) / sizeof(kRows[0]); ri++) {
                size_t cols = kCols[ci];
                /* Group sizes of 16 and 3 alternate where they divide the columns. */
                size_t group = 0;
                if ((ri % 2) == 1 && cols % 16 == 0 && cols > 16) {
                    group = 16;
                } else if ((ri % 2) == 1 && cols % 3 == 0 && cols > 3) {
                    group = 3;
                }
                problem pr;
                size_t batch = kBatches[(bi + ci + ri) % 5];

                problem_make(&pr, kRows[ri], cols, kBits[bi], group, batch);
                check_problem(&pr, isas, isa_count);
                problem_free(&pr);
                cases++;
            }
        }
    }
    printf("gemm_t: %zu shapes, %zu SIMD kernel families checked against the scalar "
           "reference\n", cases, isa_count);
}
