/*
 * Dense-layer training: rbe_dense_update leaves planes and accumulators
 * bit for bit as rbe_update_upper does on the full weight gradient, which a
 * plain loop computes in the documented order, in both modes, with
 * grad_scale != 1, on every kernel family, over row tails around the tile
 * of 8 rows and column tails. rbe_dense_grad_sum_squares matches a direct
 * float64 sum, and every rejected call writes nothing.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rbe_edge.h"

static const unsigned kBits[] = {2, 5, 8, 16};
static const size_t kCols[] = {1, 7, 64, 65, 257, 300};
static const size_t kRows[] = {1, 3, 8, 9, 17, 40};
static const size_t kBatches[] = {1, 2, 7, 32, 33};

static uint32_t rng = 31337u;

static uint32_t next_random(void)
{
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

static float random_float(void)
{
    return ((float)(next_random() % 20001) - 10000.0f) / 5000.0f;
}

typedef struct layer {
    rbe_layout layout;
    uint8_t *plane_data;
    uint8_t *planes[16];
    float *scale;
    int8_t *accum;
    float *x;
    float *dy;
    size_t batch;
} layer;

static void layer_make(layer *ly, size_t rows, size_t cols, unsigned bits, size_t group,
                       size_t batch)
{
    CHECK(rbe_layout_init(&ly->layout, rows, cols, bits, group) == RBE_OK,
          "layout rows=%zu cols=%zu bits=%u group=%zu", rows, cols, bits, group);
    size_t count = rows * cols;
    size_t params = rows * ly->layout.groups;
    uint16_t *codes = malloc(count * sizeof(uint16_t));

    ly->batch = batch;
    ly->plane_data = malloc(bits * ly->layout.plane_bytes);
    ly->scale = malloc(params * sizeof(float));
    ly->accum = malloc(count);
    ly->x = malloc(batch * cols * sizeof(float));
    ly->dy = malloc(batch * rows * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        codes[i] = (uint16_t)(next_random() & ((1u << bits) - 1u));
        ly->accum[i] = (int8_t)((int)(next_random() % 255) - 127);
    }
    for (size_t i = 0; i < params; i++) {
        ly->scale[i] = 1e-3f * (float)(1 + next_random() % 100);
    }
    for (size_t i = 0; i < batch * cols; i++) {
        ly->x[i] = random_float();
    }
    for (size_t i = 0; i < batch * rows; i++) {
        ly->dy[i] = random_float() * 0.01f;
    }
    for (unsigned p = 0; p < bits; p++) {
        ly->planes[p] = ly->plane_data + p * ly->layout.plane_bytes;
    }
    rbe_encode(&ly->layout, codes, ly->planes);
    free(codes);
}

static void layer_free(layer *ly)
{
    free(ly->plane_data);
    free(ly->scale);
    free(ly->accum);
    free(ly->x);
    free(ly->dy);
}

/* The documented gradient: G = grad_scale * (sum over m in order of dy * x), float32. */
static float *full_gradient(const layer *ly, float grad_scale)
{
    size_t rows = ly->layout.rows;
    size_t cols = ly->layout.cols;
    float *grad = malloc(rows * cols * sizeof(float));

    for (size_t n = 0; n < rows; n++) {
        for (size_t k = 0; k < cols; k++) {
            float sum = 0.0f;
            for (size_t m = 0; m < ly->batch; m++) {
                float product = ly->dy[m * rows + n] * ly->x[m * cols + k];
                sum = sum + product;
            }
            grad[n * cols + k] = grad_scale * sum;
        }
    }
    return grad;
}

static rbe_update_params params_for(unsigned upper, rbe_update_mode mode, float lr,
                                    uint64_t step)
{
    rbe_update_params params;
    params.upper_planes = upper;
    params.mode = mode;
    params.learning_rate = lr;
    params.seed = 0x5eed;
    params.step = step;
    return params;
}

static void check_against_full_update(layer *ly, const rbe_isa *isas, size_t isa_count)
{
    const rbe_layout *l = &ly->layout;
    size_t plane_total = l->bits * l->plane_bytes;
    size_t count = l->rows * l->cols;
    size_t workspace_floats = rbe_dense_update_workspace(l);
    float *workspace = malloc(workspace_floats * sizeof(float));
    uint8_t *start_planes = malloc(plane_total);
    int8_t *start_accum = malloc(count);
    uint8_t *ref_planes = malloc(plane_total);
    int8_t *ref_accum = malloc(count);
    const float grad_scale = 0.37f;
    float *grad = full_gradient(ly, grad_scale);
    const unsigned uppers[] = {1, (l->bits + 1) / 2, l->bits};

    CHECK(workspace_floats == (l->rows < 8 ? l->rows : 8) * l->cols,
          "workspace of %zu floats for rows=%zu cols=%zu", workspace_floats, l->rows, l->cols);
    memcpy(start_planes, ly->plane_data, plane_total);
    memcpy(start_accum, ly->accum, count);

    /* mode 2 is accumulate mode with the fold in the same pass. */
    for (int mode = 0; mode <= 2; mode++) {
        for (size_t ui = 0; ui < 3; ui++) {
            int fold = mode == 2;
            rbe_update_params params = params_for(uppers[ui], (rbe_update_mode)(mode % 2), 0.5f,
                                                  ui + 3);
            rbe_layout reference_layout = *l;

            reference_layout.isa = RBE_ISA_SCALAR;
            CHECK(rbe_update_upper(&reference_layout, ly->planes, ly->scale, grad, ly->accum,
                                   &params) == RBE_OK, "full update");
            if (fold) {
                CHECK(rbe_fold_lsb(&reference_layout, ly->planes, ly->accum, uppers[ui]) ==
                      RBE_OK, "fold after the full update");
            }
            memcpy(ref_planes, ly->plane_data, plane_total);
            memcpy(ref_accum, ly->accum, count);

            for (size_t i = 0; i <= isa_count; i++) {
                memcpy(ly->plane_data, start_planes, plane_total);
                memcpy(ly->accum, start_accum, count);
                ly->layout.isa = i == 0 ? RBE_ISA_SCALAR : isas[i - 1];
                CHECK(rbe_dense_update(l, ly->planes, ly->scale, ly->x, ly->dy, ly->batch,
                                       grad_scale, ly->accum, &params, fold, workspace,
                                       workspace_floats) == RBE_OK, "dense update");
                CHECK(memcmp(ref_planes, ly->plane_data, plane_total) == 0,
                      "dense update planes differ from the full update: isa %d B=%u U=%u "
                      "mode %d rows=%zu K=%zu G=%zu M=%zu", l->isa, l->bits, uppers[ui], mode,
                      l->rows, l->cols, l->group_size, ly->batch);
                CHECK(memcmp(ref_accum, ly->accum, count) == 0,
                      "dense update accumulators differ from the full update: isa %d B=%u "
                      "U=%u mode %d rows=%zu K=%zu M=%zu", l->isa, l->bits, uppers[ui], mode,
                      l->rows, l->cols, ly->batch);
            }
            memcpy(ly->plane_data, start_planes, plane_total);
            memcpy(ly->accum, start_accum, count);
            ly->layout.isa = RBE_ISA_AUTO;
        }
    }
    free(workspace);
    free(start_planes);
    free(start_accum);
    free(ref_planes);
    free(ref_accum);
    free(grad);
}

static void check_sum_squares(const layer *ly)
{
    size_t rows = ly->layout.rows;
    size_t cols = ly->layout.cols;
    double exact = 0.0;
    double magnitude = 0.0;
    double result = -1.0;

    for (size_t n = 0; n < rows; n++) {
        for (size_t k = 0; k < cols; k++) {
            double sum = 0.0;
            double abs_sum = 0.0;
            for (size_t m = 0; m < ly->batch; m++) {
                double term = (double)ly->dy[m * rows + n] * (double)ly->x[m * cols + k];
                sum += term;
                abs_sum += fabs(term);
            }
            exact += sum * sum;
            magnitude += abs_sum * abs_sum;
        }
    }
    CHECK(rbe_dense_grad_sum_squares(rows, cols, ly->x, ly->dy, ly->batch, &result) == RBE_OK,
          "sum of squares");
    /* Double rounding over about batch^2 * (rows + cols) terms, relative to
     * the sum of magnitudes: far below 1e-10 for these sizes. */
    CHECK(fabs(result - exact) <= 1e-10 * magnitude,
          "sum of squares %.17g, direct %.17g: rows=%zu K=%zu M=%zu", result, exact, rows, cols,
          ly->batch);
}

static int unchanged(const layer *ly, const uint8_t *planes, const int8_t *accum,
                     const float *workspace, const float *workspace_start, size_t workspace_floats)
{
    size_t plane_total = ly->layout.bits * ly->layout.plane_bytes;
    size_t count = ly->layout.rows * ly->layout.cols;

    return memcmp(planes, ly->plane_data, plane_total) == 0 &&
           memcmp(accum, ly->accum, count) == 0 &&
           memcmp(workspace, workspace_start, workspace_floats * sizeof(float)) == 0;
}

/* Runs a dense update that must fail and checks that it wrote nothing. */
#define CHECK_REJECTED(call, expected, what)                                             \
    do {                                                                                 \
        CHECK((call) == (expected), "%s", what);                                         \
        CHECK(unchanged(&ly, planes_start, accum_start, workspace, workspace_start, ws),  \
              "a rejected update wrote its outputs: %s", what);                         \
    } while (0)

static void check_update_arguments(void)
{
    layer ly;
    layer_make(&ly, 10, 48, 8, 16, 3);
    rbe_layout *l = &ly.layout;
    size_t ws = rbe_dense_update_workspace(l);
    float *workspace = malloc(ws * sizeof(float));
    float *workspace_start = malloc(ws * sizeof(float));
    uint8_t *planes_start = malloc(8 * l->plane_bytes);
    int8_t *accum_start = malloc(10 * 48);
    rbe_update_params ok = params_for(4, RBE_UPDATE_ACCUMULATE, 0.1f, 0);
    rbe_update_params p;

    for (size_t i = 0; i < ws; i++) {
        workspace[i] = 12345.0f;
    }
    memcpy(workspace_start, workspace, ws * sizeof(float));
    memcpy(planes_start, ly.plane_data, 8 * l->plane_bytes);
    memcpy(accum_start, ly.accum, 10 * 48);

    CHECK(rbe_dense_update_workspace(NULL) == 0, "workspace of a NULL layout");
    CHECK_REJECTED(rbe_dense_update(NULL, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum,
                                    &ok, 0, workspace, ws), RBE_ERR_NULL, "NULL layout");
    CHECK_REJECTED(rbe_dense_update(l, NULL, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_NULL, "NULL planes");
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, NULL, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_NULL, "NULL scale");
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, NULL, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_NULL, "NULL x");
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, NULL, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_NULL, "NULL dy");
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, NULL, &ok, 0,
                                    workspace, ws), RBE_ERR_NULL, "NULL accum");
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, NULL, 0,
                                    workspace, ws), RBE_ERR_NULL, "NULL params");
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    NULL, ws), RBE_ERR_NULL, "NULL workspace");
    ly.planes[2] = NULL;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_NULL, "NULL plane 2");
    ly.planes[2] = ly.plane_data + 2 * l->plane_bytes;

    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 0, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_SIZE, "batch 0");
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, SIZE_MAX / 16, 1.0f,
                                    ly.accum, &ok, 0, workspace, ws), RBE_ERR_SIZE, "batch overflow");
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws - 1), RBE_ERR_SIZE, "workspace too small");

    p = ok;
    p.upper_planes = 0;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &p, 0,
                                    workspace, ws), RBE_ERR_PLANES, "U = 0");
    p.upper_planes = 9;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &p, 0,
                                    workspace, ws), RBE_ERR_PLANES, "U = 9");
    p = ok;
    p.mode = (rbe_update_mode)7;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &p, 0,
                                    workspace, ws), RBE_ERR_UNSUPPORTED, "mode 7");
    p = ok;
    p.learning_rate = NAN;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &p, 0,
                                    workspace, ws), RBE_ERR_VALUE, "NaN learning rate");

    const float bad_scales[] = {0.0f, -1.0f, NAN, INFINITY};
    for (size_t i = 0; i < 4; i++) {
        CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, bad_scales[i],
                                        ly.accum, &ok, 0, workspace, ws), RBE_ERR_VALUE,
                       "bad grad_scale");
    }

    float saved = ly.x[100];
    ly.x[100] = NAN;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_VALUE, "NaN in x");
    ly.x[100] = saved;
    saved = ly.dy[29];
    ly.dy[29] = -INFINITY;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_VALUE, "infinite dy");

    /* 2 * 3 * 1e19 * 1e19 = 6e38 > FLT_MAX, although each product fits. */
    ly.dy[29] = 1e19f;
    ly.x[100] = 1e19f;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_VALUE, "sum bound exceeded");
    /* A small grad_scale does not help: the unscaled sum would overflow first. */
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1e-10f, ly.accum,
                                    &ok, 0, workspace, ws), RBE_ERR_VALUE,
                   "sum bound exceeded with a small grad_scale");
    /* 2 * 100 * 3 * 1e18 * 1e18 = 6e38: the scaled gradient would overflow. */
    ly.dy[29] = 1e18f;
    ly.x[100] = 1e18f;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 100.0f, ly.accum,
                                    &ok, 0, workspace, ws), RBE_ERR_VALUE,
                   "scaled bound exceeded");
    CHECK(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                           workspace, ws) == RBE_OK, "large values within the bound");
    memcpy(ly.plane_data, planes_start, 8 * l->plane_bytes);
    memcpy(ly.accum, accum_start, 10 * 48);
    memcpy(workspace, workspace_start, ws * sizeof(float));
    ly.dy[29] = saved;

    saved = ly.scale[5];
    ly.scale[5] = 0.0f;
    CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum, &ok, 0,
                                    workspace, ws), RBE_ERR_SCALE, "zero scale");
    ly.scale[5] = saved;

    int available = 1;
    rbe_isa missing = RBE_ISA_NEON;
#if defined(__aarch64__) || defined(__arm__)
    missing = RBE_ISA_AVX2;
#endif
    rbe_isa_available(missing, &available);
    if (!available) {
        l->isa = missing;
        CHECK_REJECTED(rbe_dense_update(l, ly.planes, ly.scale, ly.x, ly.dy, 3, 1.0f, ly.accum,
                                        &ok, 0, workspace, ws), RBE_ERR_ISA, "unavailable isa");
        l->isa = RBE_ISA_AUTO;
    }

    free(workspace);
    free(workspace_start);
    free(planes_start);
    free(accum_start);
    layer_free(&ly);
}

static void check_sum_squares_arguments(void)
{
    float x[6] = {1, 2, 3, 4, 5, 6};
    float dy[4] = {1, -1, 2, 0.5f};
    double result = -7.0;

    CHECK(rbe_dense_grad_sum_squares(2, 3, NULL, dy, 2, &result) == RBE_ERR_NULL, "NULL x");
    CHECK(rbe_dense_grad_sum_squares(2, 3, x, NULL, 2, &result) == RBE_ERR_NULL, "NULL dy");
    CHECK(rbe_dense_grad_sum_squares(2, 3, x, dy, 2, NULL) == RBE_ERR_NULL, "NULL result");
    CHECK(rbe_dense_grad_sum_squares(0, 3, x, dy, 2, &result) == RBE_ERR_SIZE, "rows 0");
    CHECK(rbe_dense_grad_sum_squares(2, 0, x, dy, 2, &result) == RBE_ERR_SIZE, "cols 0");
    CHECK(rbe_dense_grad_sum_squares(2, 3, x, dy, 0, &result) == RBE_ERR_SIZE, "batch 0");
    CHECK(rbe_dense_grad_sum_squares(2, SIZE_MAX / 2, x, dy, 2, &result) == RBE_ERR_SIZE,
          "batch * cols overflow");
    CHECK(rbe_dense_grad_sum_squares(SIZE_MAX / 2, 3, x, dy, 2, &result) == RBE_ERR_SIZE,
          "batch * rows overflow");
    CHECK(result == -7.0, "a rejected call stored %g", result);

    /* G = dy^T x = [[1*1 + 2*4, 1*2 + 2*5, 1*3 + 2*6], [-1*1 + 0.5*4, ...]]
     *   = [[9, 12, 15], [1, 0.5, 0]]: 81 + 144 + 225 + 1 + 0.25 = 451.25. */
    CHECK(rbe_dense_grad_sum_squares(2, 3, x, dy, 2, &result) == RBE_OK, "small sum of squares");
    CHECK(result == 451.25, "sum of squares %.17g, expected 451.25", result);
}

void test_dense_train(void)
{
    rbe_isa isas[3];
    size_t isa_count = available_simd_isas(isas);
    size_t cases = 0;

    check_update_arguments();
    check_sum_squares_arguments();
    for (size_t bi = 0; bi < sizeof(kBits) / sizeof(kBits[0]); bi++) {
        for (size_t ci = 0; ci < sizeof(kCols) / sizeof(kCols[0]); ci++) {
            for (size_t ri = 0; ri < sizeof(kRows) / sizeof(kRows[0]); ri++) {
                size_t cols = kCols[ci];
                size_t group = (ri % 2 == 1 && cols % 16 == 0 && cols > 16) ? 16 : 0;
                if (ri % 2 == 1 && group == 0 && cols % 3 == 0 && cols > 3) {
                    group = 3;
                }
                layer ly;
                layer_make(&ly, kRows[ri], cols, kBits[bi], group,
                           kBatches[(bi + ci + ri) % 5]);
                check_against_full_update(&ly, isas, isa_count);
                check_sum_squares(&ly);
                layer_free(&ly);
                cases++;
            }
        }
    }
    printf("dense_train: %zu shapes, %zu SIMD kernel families checked against the full "
           "update\n", cases, isa_count);
}
