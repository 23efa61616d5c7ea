/*
 * Bit-serial products: every kernel family and thread count equals the
 * scalar reference bit for bit, and the scalar reference stays within the
 * float32 accumulation bound of the exact product, for both paths (lookup
 * tables of partial sums of x, or decoded codes and fused multiply-adds).
 * The shapes hit every tail. K runs from 1 to 1100 around multiples of 16
 * and the 256- and 512-column runs of the decode kernels. Rows fall around
 * their blocks of 4, 8 and 16, and batch runs from 1 to 33 around the tiles
 * and spans of 1, 2, 4 and 8 entries. Group sizes are and are not
 * multiples of 16.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rbe_edge.h"

static const size_t kCols[] = {1, 7, 9, 15, 16, 17, 63, 64, 65, 1000};
static const size_t kRows[] = {1, 3, 5, 17, 33};
static const size_t kGroups[] = {0, 16, 32, 3};
static const unsigned kBits[] = {2, 3, 8, 11, 16};
static const size_t kBatches[] = {1, 3, 16};

/* Shapes of the random sweep in check_random_shapes. */
static const size_t kSweepCols[] = {1,   2,   8,   15,  16,  17,  31,  32,  33,  48,  63,
                                    64,  65,  100, 127, 128, 129, 200, 255, 256, 257, 300,
                                    511, 512, 513, 767, 768, 1040, 1100};
static const size_t kSweepGroups[] = {0, 0, 16, 32, 48, 64, 80, 128, 256, 5};
static const unsigned kSweepBits[] = {2, 3, 4, 5, 7, 8, 9, 12, 16};
#define SWEEP_SHAPES 160

static uint32_t rng = 777u;

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
    float *x;
    size_t batch;
} problem;

static int problem_make(problem *pr, size_t rows, size_t cols, unsigned bits, size_t group,
                        size_t batch)
{
    if (rbe_layout_init(&pr->layout, rows, cols, bits, group) != RBE_OK) {
        return 0;
    }
    size_t params = rows * pr->layout.groups;
    uint8_t *writable[16];

    pr->batch = batch;
    pr->codes = malloc(rows * cols * sizeof(uint16_t));
    pr->plane_data = malloc(bits * pr->layout.plane_bytes);
    pr->scale = malloc(params * sizeof(float));
    pr->zero = malloc(params * sizeof(float));
    pr->x = malloc(batch * cols * sizeof(float));
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
    for (size_t i = 0; i < batch * cols; i++) {
        pr->x[i] = random_float();
    }
    return 1;
}

static void problem_free(problem *pr)
{
    free(pr->codes);
    free(pr->plane_data);
    free(pr->scale);
    free(pr->zero);
    free(pr->x);
}

static double code_at(const problem *pr, size_t row, size_t col, unsigned planes_used)
{
    unsigned bits = pr->layout.bits;
    unsigned shift = bits - planes_used;
    unsigned code = pr->codes[row * pr->layout.cols + col];
    unsigned midpoint = planes_used < bits ? 1u << (shift - 1) : 0u;
    double center_shift = planes_used < bits ? 0.5 : 0.0;
    return (double)(((code >> shift) << shift) + midpoint) - center_shift;
}

/*
 * The longer chain of roundings of the two paths, in the order that
 * rbe_gemm_f32 documents. Decode: one fused multiply-add per column in
 * each of 16 lanes, then 4 tree levels. Lookup: 3 roundings to build a
 * table entry, one add per 4 columns in each of 4 chains, 2 to join the
 * chains and one per plane. Both then add the offset, the scale, the group
 * sum and one per group.
 */
static double longest_chain(const rbe_layout *l, unsigned planes_used)
{
    double decode = (double)((l->group_size + 15) / 16) + 4;
    double lookup = (double)((l->group_size + 15) / 16) + 3 + 2 + planes_used;
    return (decode > lookup ? decode : lookup) + 4 + (double)l->groups;
}

/*
 * Checks |y - exact| <= gamma(n) * 2 * sum_g scale * (sum_k |x| q_P + |mid - zero| sum_k |x|),
 * the standard bound for float32 summation (gamma(n) = n u / (1 - n u),
 * u = 2^-24) over the longest chain of n roundings (longest_chain). The
 * factor 2 covers the two reduced sums that meet in the offset term.
 */
static int within_float32_bound(const problem *pr, unsigned planes_used, const float *y)
{
    const rbe_layout *l = &pr->layout;
    unsigned bits = l->bits;
    double midpoint = planes_used < bits ? (double)(1u << (bits - planes_used - 1)) - 0.5 : 0.0;
    double chain = longest_chain(l, planes_used);
    double u = ldexp(1.0, -24);
    double gamma = chain * u / (1.0 - chain * u);

    for (size_t m = 0; m < pr->batch; m++) {
        for (size_t r = 0; r < l->rows; r++) {
            double exact = 0.0;
            double magnitude = 0.0;
            for (size_t g = 0; g < l->groups; g++) {
                size_t param = r * l->groups + g;
                double bits_part = 0.0, abs_bits = 0.0, x_part = 0.0, abs_x = 0.0;
                for (size_t c = g * l->group_size; c < (g + 1) * l->group_size; c++) {
                    double xv = pr->x[m * l->cols + c];
                    double q = code_at(pr, r, c, planes_used) - midpoint;
                    bits_part += xv * q;
                    abs_bits += fabs(xv) * q;
                    x_part += xv;
                    abs_x += fabs(xv);
                }
                double offset = midpoint - pr->zero[param];
                exact += pr->scale[param] * (bits_part + offset * x_part);
                magnitude += pr->scale[param] * (abs_bits + fabs(offset) * abs_x);
            }
            double error = fabs((double)y[m * l->rows + r] - exact);
            if (error > 2.0 * gamma * magnitude + 1e-30) {
                fprintf(stderr, "  y[%zu,%zu] = %.9g, exact %.9g, error %.3g > bound %.3g\n", m, r,
                        (double)y[m * l->rows + r], exact, error, 2.0 * gamma * magnitude);
                return 0;
            }
        }
    }
    return 1;
}

/* Checks P = p for each bit p set in plane_mask (bit p - 1 for P = p). */
static void check_problem_planes(problem *pr, const rbe_isa *isas, size_t isa_count,
                                 uint32_t plane_mask)
{
    const rbe_layout *l = &pr->layout;
    size_t count = pr->batch * l->rows;
    float *reference = malloc(count * sizeof(float));
    float *actual = malloc(count * sizeof(float));

    for (unsigned p = 1; p <= l->bits; p++) {
        if (!((plane_mask >> (p - 1)) & 1u)) {
            continue;
        }
        pr->layout.isa = RBE_ISA_SCALAR;
        CHECK(rbe_gemm_f32(&pr->layout, pr->planes, p, pr->scale, pr->zero, pr->x, pr->batch,
                           reference, 1) == RBE_OK, "scalar gemm");
        CHECK(within_float32_bound(pr, p, reference),
              "scalar gemm outside the float32 bound: B=%u P=%u rows=%zu K=%zu G=%zu M=%zu",
              l->bits, p, l->rows, l->cols, l->group_size, pr->batch);

        for (size_t i = 0; i < isa_count; i++) {
            for (unsigned threads = 1; threads <= 3; threads++) {
                memset(actual, 0xFF, count * sizeof(float));
                pr->layout.isa = isas[i];
                CHECK(rbe_gemm_f32(&pr->layout, pr->planes, p, pr->scale, pr->zero, pr->x,
                                   pr->batch, actual, threads) == RBE_OK, "gemm isa %d", isas[i]);
                CHECK(memcmp(reference, actual, count * sizeof(float)) == 0,
                      "gemm isa %d threads %u differs from scalar: B=%u P=%u rows=%zu K=%zu "
                      "G=%zu M=%zu", isas[i], threads, l->bits, p, l->rows, l->cols,
                      l->group_size, pr->batch);
            }
        }
    }
    free(reference);
    free(actual);
}

static void check_problem(problem *pr, const rbe_isa *isas, size_t isa_count)
{
    check_problem_planes(pr, isas, isa_count, 0xFFFFu);
}

/*
 * Random shapes around the blocks of the decode kernels: rows 1 to 40,
 * batch 1 to 33 and K from kSweepCols, each checked at P = 1, 2, B / 2 + 1
 * and B.
 */
static void check_random_shapes(const rbe_isa *isas, size_t isa_count)
{
    size_t checked = 0;

    while (checked < SWEEP_SHAPES) {
        size_t cols = kSweepCols[next_random() % (sizeof(kSweepCols) / sizeof(kSweepCols[0]))];
        size_t group_index = next_random() % (sizeof(kSweepGroups) / sizeof(kSweepGroups[0]));
        size_t group = kSweepGroups[group_index];
        unsigned bits = kSweepBits[next_random() % (sizeof(kSweepBits) / sizeof(kSweepBits[0]))];
        size_t rows = 1 + next_random() % 40;
        size_t batch = 1 + next_random() % 33;
        problem pr;

        if (group != 0 && (group >= cols || cols % group != 0)) {
            continue;
        }
        CHECK(problem_make(&pr, rows, cols, bits, group, batch), "problem_make");
        uint32_t plane_mask = 1u | 2u | 1u << (bits / 2) | 1u << (bits - 1);
        check_problem_planes(&pr, isas, isa_count, plane_mask);
        problem_free(&pr);
        checked++;
    }
}

/*
 * Many groups per row on the lookup path. 65 groups of 16 columns cross the
 * kernels' windows of 4, 8 and 16 groups and end in one left over. Groups
 * of 48 columns end in the middle of a 32-column word.
 */
static void check_many_groups(const rbe_isa *isas, size_t isa_count)
{
    static const size_t shapes[][3] = {{17, 1040, 16}, {5, 1056, 48}, {33, 528, 16}};

    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        for (size_t batch = 1; batch <= 3; batch += 2) {
            problem pr;
            CHECK(problem_make(&pr, shapes[i][0], shapes[i][1], 8, shapes[i][2], batch),
                  "problem_make");
            check_problem_planes(&pr, isas, isa_count, 0x7u);
            problem_free(&pr);
        }
    }
}

static void check_gemm_arguments(void)
{
    problem pr;
    float y[4 * 16];

    CHECK(problem_make(&pr, 4, 32, 8, 16, 2), "problem_make");
    CHECK(rbe_gemm_f32(NULL, pr.planes, 8, pr.scale, pr.zero, pr.x, 2, y, 1) == RBE_ERR_NULL,
          "NULL layout");
    CHECK(rbe_gemm_f32(&pr.layout, NULL, 8, pr.scale, pr.zero, pr.x, 2, y, 1) == RBE_ERR_NULL,
          "NULL planes");
    CHECK(rbe_gemm_f32(&pr.layout, pr.planes, 8, pr.scale, pr.zero, NULL, 2, y, 1) ==
          RBE_ERR_NULL, "NULL x");
    CHECK(rbe_gemm_f32(&pr.layout, pr.planes, 8, pr.scale, pr.zero, pr.x, 2, NULL, 1) ==
          RBE_ERR_NULL, "NULL y");
    CHECK(rbe_gemm_f32(&pr.layout, pr.planes, 8, pr.scale, pr.zero, pr.x, 0, y, 1) ==
          RBE_ERR_SIZE, "batch 0");
    CHECK(rbe_gemm_f32(&pr.layout, pr.planes, 8, pr.scale, pr.zero, pr.x, SIZE_MAX / 8, y, 1) ==
          RBE_ERR_SIZE, "batch overflow");
    /* Passes the x and y size checks, but its lookup tables would overflow. */
    CHECK(rbe_gemm_f32(&pr.layout, pr.planes, 1, pr.scale, pr.zero, pr.x,
                       SIZE_MAX / sizeof(float) / 32 - 1, y, 1) == RBE_ERR_SIZE,
          "lookup tables overflow");
    CHECK(rbe_gemm_f32(&pr.layout, pr.planes, 0, pr.scale, pr.zero, pr.x, 2, y, 1) ==
          RBE_ERR_PLANES, "P = 0");
    CHECK(rbe_gemm_f32(&pr.layout, pr.planes, 9, pr.scale, pr.zero, pr.x, 2, y, 1) ==
          RBE_ERR_PLANES, "P = 9");
    CHECK(rbe_gemm_f32(&pr.layout, pr.planes, 8, pr.scale, pr.zero, pr.x, 2, y, 1000) ==
          RBE_ERR_UNSUPPORTED, "1000 threads");
    pr.scale[3] = -1.0f;
    CHECK(rbe_gemm_f32(&pr.layout, pr.planes, 8, pr.scale, pr.zero, pr.x, 2, y, 1) ==
          RBE_ERR_SCALE, "negative scale");
    problem_free(&pr);
}

void test_gemm(void)
{
    rbe_isa isas[3];
    size_t isa_count = available_simd_isas(isas);

    check_gemm_arguments();
    for (size_t bi = 0; bi < sizeof(kBits) / sizeof(kBits[0]); bi++) {
        for (size_t ci = 0; ci < sizeof(kCols) / sizeof(kCols[0]); ci++) {
            for (size_t gi = 0; gi < sizeof(kGroups) / sizeof(kGroups[0]); gi++) {
                size_t group = kGroups[gi];
                if (group != 0 && (group >= kCols[ci] || kCols[ci] % group != 0)) {
                    continue;
                }
                for (size_t ri = 0; ri < sizeof(kRows) / sizeof(kRows[0]); ri++) {
                    problem pr;
                    size_t batch = kBatches[(bi + ci + ri) % 3];
                    CHECK(problem_make(&pr, kRows[ri], kCols[ci], kBits[bi], group, batch),
                          "problem_make");
                    check_problem(&pr, isas, isa_count);
                    problem_free(&pr);
                }
            }
        }
    }
    check_random_shapes(isas, isa_count);
    check_many_groups(isas, isa_count);
    printf("gemm: %zu SIMD kernel families checked against the scalar reference\n", isa_count);
}
