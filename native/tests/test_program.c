/*
 * Tests of layer programs: forward passes and losses against a float64
 * reference built from rbe_decode_f32, the direction of every training step
 * against float64 gradients, identical results across ISAs and thread
 * counts, and error paths that leave planes and accumulators untouched.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define BATCH 7
#define MAX_LAYERS 8
#define MAX_DENSE 3

/* One dense layer's storage: planes, scales, zero points, bias, accumulator. */
typedef struct dense_store {
    rbe_layout layout;
    uint8_t *plane_data;
    uint8_t *planes[16];
    float *scale;
    float *zero;
    float *bias;
    int8_t *accum;
    float *decoded;          /* rbe_decode_f32 of all planes, [rows, cols] */
    rbe_rms_scaling scaling;
} dense_store;

typedef struct fixture {
    rbe_layer layers[MAX_LAYERS];
    dense_store dense[MAX_DENSE];
    size_t dense_count;
    float gamma[64];
    float beta[64];
    rbe_program program;
} fixture;

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static float uniform(uint64_t *state, float low, float high)
{
    return low + (high - low) * (float)(next_random(state) >> 40) / (float)(1u << 24);
}

static void make_dense(dense_store *store, size_t rows, size_t cols, size_t group_size,
                       uint64_t *random)
{
    unsigned bits = 8;
    rbe_layout_init(&store->layout, rows, cols, bits, group_size);
    uint16_t *codes = malloc(rows * cols * sizeof(uint16_t));
    size_t params = rows * store->layout.groups;

    for (size_t i = 0; i < rows * cols; i++) {
        codes[i] = (uint16_t)(next_random(random) % 256);
    }
    store->plane_data = calloc(bits, store->layout.plane_bytes);
    for (unsigned p = 0; p < bits; p++) {
        store->planes[p] = store->plane_data + p * store->layout.plane_bytes;
    }
    rbe_encode(&store->layout, codes, store->planes);
    free(codes);

    store->scale = malloc(params * sizeof(float));
    store->zero = malloc(params * sizeof(float));
    for (size_t i = 0; i < params; i++) {
        store->scale[i] = uniform(random, 0.5f, 1.5f) / (64.0f * sqrtf((float)cols));
        store->zero[i] = (float)(120 + next_random(random) % 16);
    }
    store->bias = malloc(rows * sizeof(float));
    for (size_t i = 0; i < rows; i++) {
        store->bias[i] = uniform(random, -0.2f, 0.2f);
    }
    store->accum = calloc(rows * cols, 1);
    store->decoded = malloc(rows * cols * sizeof(float));
    store->scaling.decay = 0.999;
}

static void free_fixture(fixture *f)
{
    for (size_t i = 0; i < f->dense_count; i++) {
        dense_store *store = &f->dense[i];
        free(store->plane_data);
        free(store->scale);
        free(store->zero);
        free(store->bias);
        free(store->accum);
        free(store->decoded);
    }
}

static void add_dense(fixture *f, size_t rows, size_t cols, size_t group_size, int trainable,
                      uint64_t *random)
{
    dense_store *store = &f->dense[f->dense_count++];
    rbe_layer *layer = &f->layers[f->program.layer_count++];

    make_dense(store, rows, cols, group_size, random);
    memset(layer, 0, sizeof(*layer));
    layer->kind = RBE_LAYER_DENSE;
    layer->layout = &store->layout;
    layer->planes = store->planes;
    layer->planes_used = 8;
    layer->scale = store->scale;
    layer->zero = store->zero;
    layer->bias = store->bias;
    layer->trainable = trainable;
    layer->accum = store->accum;
    layer->scaling = &store->scaling;
}

static void add_simple(fixture *f, rbe_layer_kind kind, size_t width)
{
    rbe_layer *layer = &f->layers[f->program.layer_count++];

    memset(layer, 0, sizeof(*layer));
    layer->kind = kind;
    if (kind == RBE_LAYER_LAYER_NORM) {
        layer->width = width;
        layer->gamma = f->gamma;
        layer->beta = f->beta;
        layer->epsilon = 1e-5f;
    }
}

/* dense(trainable) -> GELU -> dense(frozen) -> LayerNorm -> Tanh -> dense(trainable), or
 * with `relu_variant` ReLU and the tanh GELU in place of GELU and Tanh. */
static void build(fixture *f, int relu_variant, rbe_loss_kind loss, uint64_t seed)
{
    uint64_t random = seed;

    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < 64; i++) {
        f->gamma[i] = uniform(&random, 0.8f, 1.2f);
        f->beta[i] = uniform(&random, -0.1f, 0.1f);
    }
    f->program.layers = f->layers;
    f->program.input_width = 37;
    f->program.loss = loss;
    add_dense(f, 29, 37, 0, 1, &random);
    add_simple(f, relu_variant ? RBE_LAYER_GELU_TANH : RBE_LAYER_GELU, 29);
    add_dense(f, 23, 29, 0, 0, &random);
    add_simple(f, RBE_LAYER_LAYER_NORM, 23);
    add_simple(f, relu_variant ? RBE_LAYER_RELU : RBE_LAYER_TANH, 23);
    add_dense(f, 5, 23, 0, 1, &random);
    for (size_t i = 0; i < f->dense_count; i++) {
        dense_store *store = &f->dense[i];
        rbe_decode_f32(&store->layout, (const uint8_t *const *)store->planes, 8, store->scale,
                       store->zero, store->decoded);
    }
}

/* ---- float64 reference ---- */

static double activation(rbe_layer_kind kind, double x)
{
    switch (kind) {
    case RBE_LAYER_RELU:
        return x > 0 ? x : 0;
    case RBE_LAYER_GELU:
        return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case RBE_LAYER_GELU_TANH:
        return 0.5 * x * (1 + tanh(sqrt(2 / 3.14159265358979323846) * (x + 0.044715 * x * x * x)));
    default:
        return tanh(x);
    }
}

/* Runs the program in double on one row; acts[i] receives layer i's input. */
static size_t reference_forward(const fixture *f, const double *x, double acts[][64])
{
    size_t width = f->program.input_width;
    size_t dense_index = 0;

    memcpy(acts[0], x, width * sizeof(double));
    for (size_t i = 0; i < f->program.layer_count; i++) {
        const rbe_layer *layer = &f->layers[i];
        const double *in = acts[i];
        double *out = acts[i + 1];
        if (layer->kind == RBE_LAYER_DENSE) {
            const dense_store *store = &f->dense[dense_index++];
            size_t rows = store->layout.rows;
            for (size_t r = 0; r < rows; r++) {
                double sum = store->bias[r];
                for (size_t c = 0; c < width; c++) {
                    sum += store->decoded[r * width + c] * in[c];
                }
                out[r] = sum;
            }
            width = rows;
        } else if (layer->kind == RBE_LAYER_LAYER_NORM) {
            double mean = 0, var = 0;
            for (size_t c = 0; c < width; c++) {
                mean += in[c] / (double)width;
            }
            for (size_t c = 0; c < width; c++) {
                var += (in[c] - mean) * (in[c] - mean) / (double)width;
            }
            for (size_t c = 0; c < width; c++) {
                out[c] = (in[c] - mean) / sqrt(var + 1e-5) * f->gamma[c] + f->beta[c];
            }
        } else {
            for (size_t c = 0; c < width; c++) {
                out[c] = activation(layer->kind, in[c]);
            }
        }
    }
    return width;
}

static void random_input(float *x, size_t count, uint64_t seed)
{
    uint64_t random = seed;
    for (size_t i = 0; i < count; i++) {
        x[i] = uniform(&random, -2.0f, 2.0f);
    }
}

static float *new_workspace(const rbe_program *program, size_t batch, size_t *floats)
{
    rbe_program_workspace(program, batch, floats);
    return malloc(*floats * sizeof(float));
}

static void test_forward_matches_reference(int relu_variant)
{
    fixture f;
    float x[BATCH * 37];
    float y[BATCH * 5];
    size_t floats;

    build(&f, relu_variant, RBE_LOSS_MSE, 11 + relu_variant);
    random_input(x, BATCH * 37, 5);
    float *workspace = new_workspace(&f.program, BATCH, &floats);
    rbe_status status = rbe_program_forward(&f.program, x, BATCH, y, workspace, floats, 1);
    CHECK(status == RBE_OK, "forward returned %d", status);

    for (size_t row = 0; row < BATCH; row++) {
        double input[64];
        double acts[MAX_LAYERS + 1][64];
        for (size_t c = 0; c < 37; c++) {
            input[c] = x[row * 37 + c];
        }
        reference_forward(&f, input, acts);
        for (size_t c = 0; c < 5; c++) {
            double expected = acts[f.program.layer_count][c];
            double error = fabs(y[row * 5 + c] - expected);
            CHECK(error <= 1e-4 * (1 + fabs(expected)),
                  "variant %d row %zu output %zu: %g, float64 reference %g", relu_variant, row,
                  c, y[row * 5 + c], expected);
        }
    }
    free(workspace);
    free_fixture(&f);
}

/* ---- training steps ---- */

static unsigned read_code(const dense_store *store, size_t row, size_t col)
{
    unsigned code = 0;
    for (unsigned p = 0; p < 8; p++) {
        const uint8_t *byte = store->planes[p] + row * store->layout.row_stride + col / 8;
        code = (code << 1) | ((*byte >> (col % 8)) & 1u);
    }
    return code;
}

/* Mean cross-entropy of the float64 reference forward pass. */
static double reference_loss(fixture *f, const float *x, const int64_t *classes)
{
    double total = 0;
    for (size_t row = 0; row < BATCH; row++) {
        double input[64];
        double acts[MAX_LAYERS + 1][64];
        for (size_t c = 0; c < 37; c++) {
            input[c] = x[row * 37 + c];
        }
        size_t width = reference_forward(f, input, acts);
        const double *z = acts[f->program.layer_count];
        double largest = z[0], sum = 0;
        for (size_t c = 1; c < width; c++) {
            largest = z[c] > largest ? z[c] : largest;
        }
        for (size_t c = 0; c < width; c++) {
            sum += exp(z[c] - largest);
        }
        total += largest + log(sum) - z[classes[row]];
    }
    return total / BATCH;
}

static double numeric_gradient(fixture *f, size_t dense_index, size_t row, size_t col,
                               const float *x, const int64_t *classes)
{
    dense_store *store = &f->dense[dense_index];
    float *weight = &store->decoded[row * store->layout.cols + col];
    float saved = *weight;
    double step = 1e-3;     /* central differences: error O(step^2) */

    *weight = (float)(saved + step);
    double up = reference_loss(f, x, classes);
    *weight = (float)(saved - step);
    double down = reference_loss(f, x, classes);
    *weight = saved;
    return (up - down) / (2 * step);
}

/*
 * With sign mode and a learning rate far above every |d|, each upper code
 * moves one step against its gradient unless it is clamped, so the moves
 * expose the sign of every weight gradient the backward pass computed.
 */
static void test_step_follows_gradient(void)
{
    fixture f;
    float x[BATCH * 37];
    int64_t classes[BATCH] = {0, 1, 2, 3, 4, 0, 2};
    size_t floats;
    unsigned before[MAX_DENSE][29 * 37];
    rbe_update_params params = {4, RBE_UPDATE_SIGN, 1e6f, 7, 0};
    float loss = 0;

    build(&f, 0, RBE_LOSS_CROSS_ENTROPY, 21);
    random_input(x, BATCH * 37, 9);
    for (size_t d = 0; d < f.dense_count; d++) {
        for (size_t i = 0; i < f.dense[d].layout.rows * f.dense[d].layout.cols; i++) {
            before[d][i] = read_code(&f.dense[d], i / f.dense[d].layout.cols,
                                     i % f.dense[d].layout.cols);
        }
    }
    double expected_loss = reference_loss(&f, x, classes);
    float *workspace = new_workspace(&f.program, BATCH, &floats);
    rbe_status status = rbe_program_step(&f.program, x, BATCH, classes, NULL, &params, 0, &loss,
                                         workspace, floats, 1);
    CHECK(status == RBE_OK, "step returned %d", status);
    CHECK(fabs(loss - expected_loss) <= 1e-4 * fabs(expected_loss),
          "loss %g, float64 reference %g", loss, expected_loss);

    size_t checked = 0;
    for (size_t d = 0; d < f.dense_count; d += 2) {
        const dense_store *store = &f.dense[d];
        size_t cols = store->layout.cols;
        for (size_t i = 0; i < store->layout.rows * cols; i += 3) {
            double grad = numeric_gradient(&f, d, i / cols, i % cols, x, classes);
            unsigned upper_before = before[d][i] >> 4;
            unsigned upper_after = read_code(store, i / cols, i % cols) >> 4;
            if (fabs(grad) < 1e-6) {
                continue;
            }
            unsigned expected = grad > 0 ? (upper_before > 0 ? upper_before - 1 : 0)
                                         : (upper_before < 15 ? upper_before + 1 : 15);
            checked++;
            CHECK(upper_after == expected,
                  "dense %zu weight %zu: gradient %g, upper code %u -> %u, expected %u", d, i,
                  grad, upper_before, upper_after, expected);
        }
    }
    CHECK(checked > 200, "only %zu weights had a gradient above the threshold", checked);
    printf("program: %zu step directions checked against float64 gradients\n", checked);

    const dense_store *frozen = &f.dense[1];
    int frozen_same = 1;
    for (size_t i = 0; i < frozen->layout.rows * frozen->layout.cols; i++) {
        frozen_same &= read_code(frozen, i / frozen->layout.cols, i % frozen->layout.cols) ==
                       before[1][i];
    }
    CHECK(frozen_same, "a frozen dense layer changed");
    free(workspace);
    free_fixture(&f);
}

static void snapshot_planes(const fixture *f, uint8_t *copy)
{
    size_t offset = 0;
    for (size_t d = 0; d < f->dense_count; d++) {
        size_t bytes = 8 * f->dense[d].layout.plane_bytes;
        memcpy(copy + offset, f->dense[d].plane_data, bytes);
        offset += bytes;
        memcpy(copy + offset, f->dense[d].accum, f->dense[d].layout.rows * f->dense[d].layout.cols);
        offset += f->dense[d].layout.rows * f->dense[d].layout.cols;
    }
}

static size_t state_bytes(const fixture *f)
{
    size_t total = 0;
    for (size_t d = 0; d < f->dense_count; d++) {
        total += 8 * f->dense[d].layout.plane_bytes + f->dense[d].layout.rows * f->dense[d].layout.cols;
    }
    return total;
}

/* Runs three accumulate-mode steps with the given ISA and thread count; returns the state. */
/*
 * Runs three accumulate-mode steps with the given ISA and thread count and
 * returns the state. fold 1 folds inside each step, fold 2 calls
 * rbe_fold_lsb after each step, and fold 0 never folds.
 */
static uint8_t *train_three_steps(rbe_isa isa, unsigned threads, int fold, float *losses)
{
    fixture f;
    float x[BATCH * 37];
    int64_t classes[BATCH] = {4, 3, 2, 1, 0, 1, 2};
    size_t floats;

    build(&f, 1, RBE_LOSS_CROSS_ENTROPY, 33);
    for (size_t d = 0; d < f.dense_count; d++) {
        f.dense[d].layout.isa = isa;
    }
    random_input(x, BATCH * 37, 13);
    float *workspace = new_workspace(&f.program, BATCH, &floats);
    for (uint64_t step = 0; step < 3; step++) {
        rbe_update_params params = {4, RBE_UPDATE_ACCUMULATE, 0.05f, 3, step};
        rbe_status status = rbe_program_step(&f.program, x, BATCH, classes, NULL, &params,
                                             fold == 1, &losses[step], workspace, floats,
                                             threads);
        CHECK(status == RBE_OK, "isa %d threads %u step %u returned %d", isa, threads,
              (unsigned)step, status);
        /* Dense layers 0 and 2 train; layer 1 is frozen. */
        for (size_t d = 0; fold == 2 && d < f.dense_count; d += 2) {
            rbe_fold_lsb(&f.dense[d].layout, f.dense[d].planes, f.dense[d].accum, 4);
        }
    }
    uint8_t *state = malloc(state_bytes(&f));
    snapshot_planes(&f, state);
    free(workspace);
    free_fixture(&f);
    return state;
}

static void test_steps_identical_across_isas(void)
{
    rbe_isa isas[3];
    size_t count = available_simd_isas(isas);
    fixture sizing;
    float reference_losses[3];

    build(&sizing, 1, RBE_LOSS_CROSS_ENTROPY, 33);
    size_t bytes = state_bytes(&sizing);
    free_fixture(&sizing);
    uint8_t *reference = train_three_steps(RBE_ISA_SCALAR, 1, 0, reference_losses);
    CHECK(reference_losses[2] < reference_losses[0], "loss did not fall: %g -> %g",
          reference_losses[0], reference_losses[2]);

    for (size_t i = 0; i <= count; i++) {
        rbe_isa isa = i < count ? isas[i] : RBE_ISA_SCALAR;
        unsigned threads = i < count ? 1 : 3;
        float losses[3];
        uint8_t *state = train_three_steps(isa, threads, 0, losses);
        CHECK(memcmp(state, reference, bytes) == 0,
              "isa %d threads %u: planes or accumulators differ from scalar", isa, threads);
        CHECK(memcmp(losses, reference_losses, sizeof(losses)) == 0,
              "isa %d threads %u: losses differ from scalar", isa, threads);
        free(state);
    }
    free(reference);
}

/* Folding inside the step equals stepping, then calling rbe_fold_lsb, on every ISA. */
static void test_step_fold_matches_fold_lsb(void)
{
    rbe_isa isas[4] = {RBE_ISA_SCALAR};
    size_t count = 1 + available_simd_isas(isas + 1);
    fixture sizing;

    build(&sizing, 1, RBE_LOSS_CROSS_ENTROPY, 33);
    size_t bytes = state_bytes(&sizing);
    free_fixture(&sizing);

    for (size_t i = 0; i < count; i++) {
        float losses[3];
        uint8_t *separate = train_three_steps(isas[i], 1, 2, losses);
        uint8_t *fused = train_three_steps(isas[i], 1, 1, losses);
        uint8_t *unfolded = train_three_steps(isas[i], 1, 0, losses);

        CHECK(memcmp(separate, fused, bytes) == 0,
              "isa %d: folding inside the step differs from rbe_fold_lsb after it", isas[i]);
        CHECK(memcmp(separate, unfolded, bytes) != 0,
              "isa %d: folding changed nothing, so the comparison proves nothing", isas[i]);
        free(separate);
        free(fused);
        free(unfolded);
    }
}

static void test_mse_loss_value(void)
{
    fixture f;
    float x[BATCH * 37];
    float y[BATCH * 5];
    float targets[BATCH * 5];
    rbe_update_params params = {4, RBE_UPDATE_SIGN, 0.01f, 1, 0};
    size_t floats;
    float loss = 0;

    build(&f, 0, RBE_LOSS_MSE, 41);
    random_input(x, BATCH * 37, 17);
    random_input(targets, BATCH * 5, 19);
    float *workspace = new_workspace(&f.program, BATCH, &floats);
    rbe_program_forward(&f.program, x, BATCH, y, workspace, floats, 1);
    double expected = 0;
    for (size_t i = 0; i < BATCH * 5; i++) {
        expected += ((double)y[i] - targets[i]) * ((double)y[i] - targets[i]) / (BATCH * 5);
    }
    rbe_status status = rbe_program_step(&f.program, x, BATCH, NULL, targets, &params, 0, &loss,
                                         workspace, floats, 1);
    CHECK(status == RBE_OK, "mse step returned %d", status);
    CHECK(fabs(loss - expected) <= 1e-6 * expected, "mse loss %g, expected %g", loss, expected);
    free(workspace);
    free_fixture(&f);
}

/* Every failing step must leave planes, accumulators and scaling states as they were. */
static void check_step_fails(fixture *f, const float *x, const int64_t *classes,
                             const rbe_update_params *params, float *workspace, size_t floats,
                             rbe_status expected, const char *what)
{
    size_t bytes = state_bytes(f);
    uint8_t *before = malloc(bytes);
    uint8_t *after = malloc(bytes);
    float loss = -1.0f;

    snapshot_planes(f, before);
    rbe_status status = rbe_program_step(&f->program, x, BATCH, classes, NULL, params, 0, &loss,
                                         workspace, floats, 1);
    snapshot_planes(f, after);
    CHECK(status == expected, "%s: returned %d, expected %d", what, status, expected);
    CHECK(memcmp(before, after, bytes) == 0, "%s: planes or accumulators changed", what);
    CHECK(loss == -1.0f, "%s: loss was written", what);
    CHECK(f->dense[0].scaling.steps == 0, "%s: the scaling state advanced", what);
    free(before);
    free(after);
}

static void test_step_errors(void)
{
    fixture f;
    float x[BATCH * 37];
    int64_t classes[BATCH] = {0, 1, 2, 3, 4, 0, 1};
    rbe_update_params params = {4, RBE_UPDATE_ACCUMULATE, 0.01f, 1, 0};
    size_t floats;

    build(&f, 0, RBE_LOSS_CROSS_ENTROPY, 51);
    random_input(x, BATCH * 37, 23);
    float *workspace = new_workspace(&f.program, BATCH, &floats);

    classes[3] = 5;
    check_step_fails(&f, x, classes, &params, workspace, floats, RBE_ERR_VALUE,
                     "class out of range");
    classes[3] = 3;
    check_step_fails(&f, x, classes, &params, workspace, floats - 1, RBE_ERR_SIZE,
                     "workspace too small");
    check_step_fails(&f, x, NULL, &params, workspace, floats, RBE_ERR_NULL, "classes missing");

    x[40] = 3e38f;
    x[41] = 3e38f;
    x[42] = -3e38f;
    check_step_fails(&f, x, classes, &params, workspace, floats, RBE_ERR_VALUE,
                     "activations overflow");
    x[40] = x[41] = x[42] = 0.5f;

    rbe_update_params bad = params;
    bad.upper_planes = 9;
    check_step_fails(&f, x, classes, &bad, workspace, floats, RBE_ERR_PLANES, "upper planes 9");
    bad = params;
    bad.learning_rate = -1.0f;
    check_step_fails(&f, x, classes, &bad, workspace, floats, RBE_ERR_VALUE, "negative lr");
    bad = params;
    bad.mode = (rbe_update_mode)7;
    check_step_fails(&f, x, classes, &bad, workspace, floats, RBE_ERR_UNSUPPORTED, "mode 7");
    f.layers[0].accum = NULL;
    check_step_fails(&f, x, classes, &params, workspace, floats, RBE_ERR_NULL,
                     "accumulate mode without accumulator");
    free(workspace);
    free_fixture(&f);
}

static void check_program_fails(fixture *f, rbe_status expected, size_t expected_layer,
                                const char *what)
{
    size_t width = 0;
    size_t failed = 99;
    rbe_status status = rbe_program_check(&f->program, &width, &failed);
    CHECK(status == expected, "%s: returned %d, expected %d", what, status, expected);
    CHECK(failed == expected_layer, "%s: failed layer %zu, expected %zu", what, failed,
          expected_layer);
}

static void test_program_check_errors(void)
{
    fixture f;
    size_t width = 0;
    size_t failed = 0;

    build(&f, 0, RBE_LOSS_CROSS_ENTROPY, 61);
    CHECK(rbe_program_check(&f.program, &width, &failed) == RBE_OK, "valid program rejected");
    CHECK(width == 5, "valid program: output width %zu, expected 5", width);
    CHECK(rbe_program_check(NULL, &width, &failed) == RBE_ERR_NULL, "NULL program accepted");

    f.program.input_width = 36;
    check_program_fails(&f, RBE_ERR_SIZE, 0, "input width 36 for 37 columns");
    f.program.input_width = 37;
    f.layers[3].width = 22;
    check_program_fails(&f, RBE_ERR_SIZE, 3, "layer norm width 22 after 23 rows");
    f.layers[3].width = 23;
    f.layers[3].epsilon = 0.0f;
    check_program_fails(&f, RBE_ERR_VALUE, 3, "epsilon 0");
    f.layers[3].epsilon = 1e-5f;
    f.layers[1].kind = (rbe_layer_kind)42;
    check_program_fails(&f, RBE_ERR_UNSUPPORTED, 1, "unknown layer kind");
    f.layers[1].kind = RBE_LAYER_GELU;
    f.layers[0].planes_used = 6;
    check_program_fails(&f, RBE_ERR_UNSUPPORTED, 0, "trainable layer reading 6 of 8 planes");
    f.layers[0].planes_used = 8;
    f.layers[5].scale = NULL;
    check_program_fails(&f, RBE_ERR_NULL, 5, "missing scale");
    f.layers[5].scale = f.dense[2].scale;
    f.dense[2].scaling.decay = 1.0;
    check_program_fails(&f, RBE_ERR_VALUE, 5, "decay 1");
    f.dense[2].scaling.decay = 0.999;
    f.program.loss = (rbe_loss_kind)3;
    check_program_fails(&f, RBE_ERR_UNSUPPORTED, f.program.layer_count, "unknown loss");
    f.program.loss = RBE_LOSS_CROSS_ENTROPY;
    f.program.layer_count = 0;
    check_program_fails(&f, RBE_ERR_SIZE, 0, "no layers");
    free_fixture(&f);
}

void test_program(void)
{
    test_forward_matches_reference(0);
    test_forward_matches_reference(1);
    test_step_follows_gradient();
    test_steps_identical_across_isas();
    test_step_fold_matches_fold_lsb();
    test_mse_loss_value();
    test_step_errors();
    test_program_check_errors();
}
