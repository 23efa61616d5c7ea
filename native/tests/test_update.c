/*
 * Upper-bitplane updates and LSB folding. SIMD kernels equal the scalar
 * reference bit for bit, and lower planes never change during steps. Codes
 * saturate instead of wrapping, and a seed and step repeat their result. The
 * accumulator and sign modes move codes by the documented amounts, and a
 * repeated fold changes nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rbe_edge.h"

static const size_t kCols[] = {1, 7, 9, 63, 64, 65, 300};
static const size_t kRows[] = {1, 3, 17};
static const unsigned kBits[] = {2, 3, 8, 12, 16};

static uint32_t rng = 4242u;

static uint32_t next_random(void)
{
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

typedef struct weights {
    rbe_layout layout;
    uint16_t *codes;
    uint8_t *plane_data;
    uint8_t *planes[16];
    float *scale;
    float *grad;
    int8_t *accum;
} weights;

static void weights_make(weights *w, size_t rows, size_t cols, unsigned bits, size_t group)
{
    rbe_layout_init(&w->layout, rows, cols, bits, group);
    size_t count = rows * cols;
    size_t params = rows * w->layout.groups;

    w->codes = malloc(count * sizeof(uint16_t));
    w->plane_data = malloc(bits * w->layout.plane_bytes);
    w->scale = malloc(params * sizeof(float));
    w->grad = malloc(count * sizeof(float));
    w->accum = malloc(count);
    for (size_t i = 0; i < count; i++) {
        w->codes[i] = (uint16_t)(next_random() & ((1u << bits) - 1u));
        w->grad[i] = ((float)(next_random() % 2001) - 1000.0f) * 1e-3f;
        w->accum[i] = (int8_t)((int)(next_random() % 255) - 127);
    }
    for (size_t i = 0; i < params; i++) {
        w->scale[i] = 1e-3f * (float)(1 + next_random() % 100);
    }
    for (unsigned p = 0; p < bits; p++) {
        w->planes[p] = w->plane_data + p * w->layout.plane_bytes;
    }
    rbe_encode(&w->layout, w->codes, w->planes);
}

static void weights_free(weights *w)
{
    free(w->codes);
    free(w->plane_data);
    free(w->scale);
    free(w->grad);
    free(w->accum);
}

/* Reads every code back from the planes (all B of them). */
static void read_codes(const weights *w, uint16_t *codes)
{
    float *decoded = malloc(w->layout.rows * w->layout.cols * sizeof(float));
    float *ones = malloc(w->layout.rows * w->layout.groups * sizeof(float));
    float *zeros = calloc(w->layout.rows * w->layout.groups, sizeof(float));
    rbe_layout plain = w->layout;

    for (size_t i = 0; i < w->layout.rows * w->layout.groups; i++) {
        ones[i] = 1.0f;
    }
    plain.isa = RBE_ISA_SCALAR;
    rbe_decode_f32(&plain, (const uint8_t *const *)w->planes, w->layout.bits, ones, zeros,
                   decoded);
    for (size_t i = 0; i < w->layout.rows * w->layout.cols; i++) {
        codes[i] = (uint16_t)decoded[i];
    }
    free(decoded);
    free(ones);
    free(zeros);
}

static rbe_update_params params_for(unsigned upper, rbe_update_mode mode, float lr,
                                    uint64_t seed, uint64_t step)
{
    rbe_update_params params;
    params.upper_planes = upper;
    params.mode = mode;
    params.learning_rate = lr;
    params.seed = seed;
    params.step = step;
    return params;
}

static void check_against_scalar(weights *w, const rbe_isa *isas, size_t isa_count)
{
    unsigned bits = w->layout.bits;
    size_t plane_total = bits * w->layout.plane_bytes;
    size_t count = w->layout.rows * w->layout.cols;
    uint8_t *start_planes = malloc(plane_total);
    int8_t *start_accum = malloc(count);
    uint8_t *ref_planes = malloc(plane_total);
    int8_t *ref_accum = malloc(count);
    const unsigned uppers[] = {1, (bits + 1) / 2, bits};

    memcpy(start_planes, w->plane_data, plane_total);
    memcpy(start_accum, w->accum, count);

    for (int mode = 0; mode <= 1; mode++) {
        for (size_t ui = 0; ui < 3; ui++) {
            unsigned upper = uppers[ui];
            size_t lower_offset = upper * w->layout.plane_bytes;

            for (size_t i = 0; i <= isa_count; i++) {
                memcpy(w->plane_data, start_planes, plane_total);
                memcpy(w->accum, start_accum, count);
                w->layout.isa = i == 0 ? RBE_ISA_SCALAR : isas[i - 1];

                for (uint64_t step = 0; step < 3; step++) {
                    rbe_update_params params = params_for(upper, (rbe_update_mode)mode, 0.7f,
                                                          99, step);
                    CHECK(rbe_update_upper(&w->layout, w->planes, w->scale, w->grad, w->accum,
                                           &params) == RBE_OK, "update");
                }
                CHECK(memcmp(w->plane_data + lower_offset, start_planes + lower_offset,
                             plane_total - lower_offset) == 0,
                      "lower planes changed: isa %d B=%u U=%u mode %d", w->layout.isa, bits,
                      upper, mode);

                if (i == 0) {
                    memcpy(ref_planes, w->plane_data, plane_total);
                    memcpy(ref_accum, w->accum, count);
                    continue;
                }
                CHECK(memcmp(ref_planes, w->plane_data, plane_total) == 0,
                      "update planes differ from scalar: isa %d B=%u U=%u mode %d rows=%zu "
                      "K=%zu G=%zu", w->layout.isa, bits, upper, mode, w->layout.rows,
                      w->layout.cols, w->layout.group_size);
                CHECK(mode == RBE_UPDATE_SIGN || memcmp(ref_accum, w->accum, count) == 0,
                      "update accumulators differ from scalar: isa %d B=%u U=%u", w->layout.isa,
                      bits, upper);
            }
        }
    }
    free(start_planes);
    free(start_accum);
    free(ref_planes);
    free(ref_accum);
}

static void check_saturation(void)
{
    weights w;
    uint16_t codes[2 * 40];

    weights_make(&w, 2, 40, 8, 0);
    for (size_t c = 0; c < 40; c++) {
        w.codes[c] = (uint16_t)(0xF0 | (c & 0x0F));      /* upper part at its maximum */
        w.codes[40 + c] = (uint16_t)(c & 0x0F);          /* upper part zero */
        w.grad[c] = -1000.0f;                            /* pushes codes up */
        w.grad[40 + c] = 1000.0f;                        /* pushes codes down */
    }
    rbe_encode(&w.layout, w.codes, w.planes);

    for (int mode = 0; mode <= 1; mode++) {
        rbe_update_params params = params_for(4, (rbe_update_mode)mode, 1.0f, 5, 0);
        memset(w.accum, 0, 80);
        CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, &params) == RBE_OK,
              "saturating update");
        read_codes(&w, codes);
        int wrapped = 0;
        for (size_t c = 0; c < 40; c++) {
            wrapped |= codes[c] != w.codes[c] || codes[40 + c] != w.codes[40 + c];
        }
        CHECK(!wrapped, "codes at the ends of the range moved or wrapped (mode %d)", mode);
    }
    weights_free(&w);
}

static void check_moves(void)
{
    weights w;
    uint16_t codes[64];

    /* d = -lr * g / (scale * 2^(B-U)) = 0.3 steps per call for every weight. */
    weights_make(&w, 1, 64, 8, 0);
    for (size_t c = 0; c < 64; c++) {
        w.codes[c] = 0x80 | (uint16_t)c;
        w.grad[c] = -0.3f * w.scale[0] * 16.0f;
    }
    rbe_encode(&w.layout, w.codes, w.planes);
    memset(w.accum, 0, 64);
    for (uint64_t step = 0; step < 10; step++) {
        rbe_update_params params = params_for(4, RBE_UPDATE_ACCUMULATE, 1.0f, 7, step);
        rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, &params);
    }
    read_codes(&w, codes);
    int bad = 0;
    for (size_t c = 0; c < 64; c++) {
        int moved = ((int)codes[c] - (int)w.codes[c]) / 16;
        bad += moved < 2 || moved > 3 || (codes[c] & 0x0F) != (w.codes[c] & 0x0F);
    }
    CHECK(bad == 0, "%d weights did not move 3 steps (+-1) after 10 calls of 0.3 steps", bad);

    /* Sign mode with |d| >= 1 moves exactly one step against the gradient. */
    rbe_encode(&w.layout, w.codes, w.planes);
    for (size_t c = 0; c < 64; c++) {
        w.grad[c] = (c % 2 ? 2.0f : -2.0f) * w.scale[0] * 16.0f;
    }
    rbe_update_params sign = params_for(4, RBE_UPDATE_SIGN, 1.0f, 7, 0);
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, NULL, &sign) == RBE_OK,
          "sign update without accumulators");
    read_codes(&w, codes);
    bad = 0;
    for (size_t c = 0; c < 64; c++) {
        bad += (int)codes[c] - (int)w.codes[c] != (c % 2 ? -16 : 16);
    }
    CHECK(bad == 0, "%d weights moved other than one step in sign mode", bad);
    weights_free(&w);
}

static void check_seeds(void)
{
    weights a, b;
    size_t bytes;

    rng = 11u;
    weights_make(&a, 3, 200, 8, 0);
    rng = 11u;
    weights_make(&b, 3, 200, 8, 0);
    bytes = 8 * a.layout.plane_bytes;

    rbe_update_params params = params_for(4, RBE_UPDATE_ACCUMULATE, 0.01f, 1234, 5);
    rbe_update_upper(&a.layout, a.planes, a.scale, a.grad, a.accum, &params);
    rbe_update_upper(&b.layout, b.planes, b.scale, b.grad, b.accum, &params);
    CHECK(memcmp(a.plane_data, b.plane_data, bytes) == 0,
          "the same seed and step gave different planes");
    CHECK(memcmp(a.accum, b.accum, 600) == 0,
          "the same seed and step gave different accumulators");

    params.seed = 1235;
    rbe_update_upper(&b.layout, b.planes, b.scale, b.grad, b.accum, &params);
    params.seed = 1234;
    rbe_update_upper(&a.layout, a.planes, a.scale, a.grad, a.accum, &params);
    CHECK(memcmp(a.accum, b.accum, 600) != 0, "different seeds gave identical accumulators");
    weights_free(&a);
    weights_free(&b);
}

static void check_fold(void)
{
    weights w;
    uint16_t codes[4];

    /* B = 8, U = 6: one step is 4 codes, so accum 64 (half a step) is 2 codes. */
    weights_make(&w, 1, 4, 8, 0);
    const uint16_t start[4] = {100, 100, 1, 254};
    const int8_t accum[4] = {64, -33, -127, 127};
    memcpy(w.codes, start, sizeof(start));
    memcpy(w.accum, accum, sizeof(accum));
    rbe_encode(&w.layout, w.codes, w.planes);

    CHECK(rbe_fold_lsb(&w.layout, w.planes, w.accum, 6) == RBE_OK, "fold");
    read_codes(&w, codes);
    CHECK(codes[0] == 102, "fold 64: code %u", codes[0]);
    CHECK(w.accum[0] == 0, "fold 64: accum %d", w.accum[0]);
    /* -33 * 4 / 128 = -1.03 codes: one code moves, -4/128 stays (-1 accum unit). */
    CHECK(codes[1] == 99, "fold -33: code %u", codes[1]);
    CHECK(w.accum[1] == -1, "fold -33: accum %d", w.accum[1]);
    CHECK(codes[2] == 0, "fold clamps at 0: code %u", codes[2]);
    CHECK(w.accum[2] == 0, "fold clamps at 0: accum %d", w.accum[2]);
    CHECK(codes[3] == 255, "fold clamps at 255: code %u", codes[3]);
    CHECK(w.accum[3] == 0, "fold clamps at 255: accum %d", w.accum[3]);
    weights_free(&w);

    /* Folding again without steps changes nothing, half-code remainders included. */
    weights_make(&w, 4, 64, 8, 0);
    for (unsigned upper = 1; upper <= 8; upper++) {
        for (size_t i = 0; i < 4 * 64; i++) {
            w.accum[i] = (int8_t)((int)(i % 255) - 127);
            w.codes[i] = (uint16_t)(16 + i % 200);
        }
        rbe_encode(&w.layout, w.codes, w.planes);
        CHECK(rbe_fold_lsb(&w.layout, w.planes, w.accum, upper) == RBE_OK, "first fold");
        size_t bytes = 8 * w.layout.plane_bytes;
        uint8_t *planes_after = malloc(bytes);
        int8_t accum_after[4 * 64];
        memcpy(planes_after, w.plane_data, bytes);
        memcpy(accum_after, w.accum, sizeof(accum_after));
        CHECK(rbe_fold_lsb(&w.layout, w.planes, w.accum, upper) == RBE_OK, "second fold");
        CHECK(memcmp(planes_after, w.plane_data, bytes) == 0 &&
                  memcmp(accum_after, w.accum, sizeof(accum_after)) == 0,
              "a second fold changed the planes or accumulators (U=%u)", upper);
        free(planes_after);
    }
    weights_free(&w);
}

/* The fold written with plain integer division, as its contract states it. */
static void reference_fold(uint16_t *code, int8_t *accum, unsigned bits, unsigned upper)
{
    int32_t step_codes = 1 << (bits - upper);
    int32_t fine = (int32_t)*accum * step_codes;
    int32_t magnitude = fine < 0 ? -fine : fine;
    int32_t delta_magnitude = (magnitude + 63) / 128;     /* halves toward zero */
    int32_t delta = fine < 0 ? -delta_magnitude : delta_magnitude;
    int32_t moved = (int32_t)*code + delta;
    int32_t max_code = (1 << bits) - 1;

    if (moved < 0 || moved > max_code) {
        *code = (uint16_t)(moved < 0 ? 0 : max_code);
        *accum = 0;
        return;
    }
    *code = (uint16_t)moved;
    *accum = (int8_t)((fine - delta * 128) / step_codes);
}

/*
 * Every accumulator value, for every B and U and every kernel family, on
 * codes near both ends and in the middle. Rows of 263 columns leave a
 * chunk of 7, so the SIMD kernels' tails run too.
 */
static void check_fold_exhaustive(const rbe_isa *isas, size_t isa_count)
{
    enum { ROWS = 3, COLS = 263 };
    size_t mismatches = 0;
    uint16_t *expected = malloc(ROWS * COLS * sizeof(uint16_t));
    int8_t *expected_accum = malloc(ROWS * COLS);
    uint16_t *codes = malloc(ROWS * COLS * sizeof(uint16_t));

    for (unsigned bits = 2; bits <= 16; bits++) {
        weights w;
        weights_make(&w, ROWS, COLS, bits, 0);
        uint16_t max_code = (uint16_t)((1u << bits) - 1);
        const uint16_t starts[ROWS] = {1, (uint16_t)(max_code / 2), (uint16_t)(max_code - 1)};

        for (unsigned upper = 1; upper <= bits; upper++) {
            for (size_t f = 0; f <= isa_count; f++) {
                w.layout.isa = f == 0 ? RBE_ISA_SCALAR : isas[f - 1];
                for (size_t i = 0; i < ROWS * COLS; i++) {
                    w.codes[i] = starts[i / COLS];
                    w.accum[i] = (int8_t)((int)((i * 7) % 256) - 128);
                    expected[i] = w.codes[i];
                    expected_accum[i] = w.accum[i];
                    reference_fold(&expected[i], &expected_accum[i], bits, upper);
                }
                rbe_encode(&w.layout, w.codes, w.planes);
                rbe_fold_lsb(&w.layout, w.planes, w.accum, upper);
                read_codes(&w, codes);
                for (size_t i = 0; i < ROWS * COLS; i++) {
                    mismatches += codes[i] != expected[i] || w.accum[i] != expected_accum[i];
                }
            }
        }
        weights_free(&w);
    }
    free(codes);
    free(expected);
    free(expected_accum);
    CHECK(mismatches == 0, "%zu folds differ from the division-based reference", mismatches);
}

static void check_arguments(void)
{
    weights w;
    weights_make(&w, 2, 16, 8, 0);
    size_t bytes = 8 * w.layout.plane_bytes;
    uint8_t *before = malloc(bytes);
    memcpy(before, w.plane_data, bytes);
    rbe_update_params ok = params_for(4, RBE_UPDATE_ACCUMULATE, 0.1f, 1, 0);
    rbe_update_params p;

    CHECK(rbe_update_upper(NULL, w.planes, w.scale, w.grad, w.accum, &ok) == RBE_ERR_NULL, "NULL layout");
    CHECK(rbe_update_upper(&w.layout, NULL, w.scale, w.grad, w.accum, &ok) == RBE_ERR_NULL, "NULL planes");
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, NULL, w.accum, &ok) == RBE_ERR_NULL, "NULL grad");
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, NULL, &ok) == RBE_ERR_NULL, "NULL accum");
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, NULL) == RBE_ERR_NULL, "NULL params");
    p = ok;
    p.upper_planes = 0;
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, &p) == RBE_ERR_PLANES, "U = 0");
    p.upper_planes = 9;
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, &p) == RBE_ERR_PLANES, "U = 9");
    p = ok;
    p.mode = (rbe_update_mode)7;
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, &p) == RBE_ERR_UNSUPPORTED, "mode 7");
    const float bad_rates[] = {0.0f, -1.0f, NAN, INFINITY};
    for (size_t i = 0; i < 4; i++) {
        p = ok;
        p.learning_rate = bad_rates[i];
        CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, &p) == RBE_ERR_VALUE,
              "learning rate %g", (double)bad_rates[i]);
    }
    w.grad[31] = NAN;
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, &ok) == RBE_ERR_VALUE, "NaN gradient");
    w.grad[31] = INFINITY;
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, &ok) == RBE_ERR_VALUE, "Inf gradient");
    CHECK(memcmp(before, w.plane_data, bytes) == 0, "planes written by a failed update");
    w.grad[31] = 0.0f;
    w.scale[1] = 0.0f;
    CHECK(rbe_update_upper(&w.layout, w.planes, w.scale, w.grad, w.accum, &ok) == RBE_ERR_SCALE, "zero scale");

    CHECK(rbe_fold_lsb(&w.layout, w.planes, NULL, 4) == RBE_ERR_NULL, "fold NULL accum");
    CHECK(rbe_fold_lsb(&w.layout, w.planes, w.accum, 0) == RBE_ERR_PLANES, "fold U = 0");
    w.planes[7] = NULL;
    CHECK(rbe_fold_lsb(&w.layout, w.planes, w.accum, 4) == RBE_ERR_NULL, "fold NULL plane 7");
    free(before);
    w.planes[7] = w.plane_data + 7 * w.layout.plane_bytes;
    weights_free(&w);
}

void test_update(void)
{
    rbe_isa isas[3];
    size_t isa_count = available_simd_isas(isas);

    check_arguments();
    check_saturation();
    check_moves();
    check_seeds();
    check_fold();
    check_fold_exhaustive(isas, isa_count);
    for (size_t bi = 0; bi < sizeof(kBits) / sizeof(kBits[0]); bi++) {
        for (size_t ci = 0; ci < sizeof(kCols) / sizeof(kCols[0]); ci++) {
            for (size_t ri = 0; ri < sizeof(kRows) / sizeof(kRows[0]); ri++) {
                weights w;
                size_t group = kCols[ci] % 3 == 0 && kCols[ci] > 3 ? 3 : 0;
                weights_make(&w, kRows[ri], kCols[ci], kBits[bi], group);
                check_against_scalar(&w, isas, isa_count);
                weights_free(&w);
            }
        }
    }
    printf("update: %zu SIMD kernel families checked against the scalar reference\n", isa_count);
}
