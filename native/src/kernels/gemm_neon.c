/*
 * NEON (aarch64) bit-serial product for P = 1 (see rbe_gemm_uses_decode for
 * larger P), 4 rows at a time; each 16-lane accumulator is four 4-float
 * registers. vtst turns a plane byte into lane masks and vbsl keeps x where
 * the bit is set, +0.0 elsewhere, which matches the scalar reference
 * exactly.
 *
 * armv7 runs the scalar kernel instead: its NEON flushes subnormal floats
 * to zero, so it could not match the reference on subnormal activations.
 */
#include "../internal.h"

#if defined(RBE_HAVE_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#define ROWS_PER_STEP 4

static const uint32_t kLowBits[4] = {1, 2, 4, 8};
static const uint32_t kHighBits[4] = {16, 32, 64, 128};

static void load_x_block(const float *x, size_t col, size_t end_col, float32x4_t *value)
{
    float padded[16] = {0};
    const float *source = x + col;

    if (col + 16 > end_col) {
        memcpy(padded, x + col, (end_col - col) * sizeof(float));
        source = padded;
    }
    for (int q = 0; q < 4; q++) {
        value[q] = vld1q_f32(source + 4 * q);
    }
}

static void add_set_bits(float32x4_t *acc, const uint8_t *row_bits, const float32x4_t *weighted)
{
    const uint32x4_t low_bits = vld1q_u32(kLowBits);
    const uint32x4_t high_bits = vld1q_u32(kHighBits);
    const float32x4_t zero = vdupq_n_f32(0.0f);

    for (int half = 0; half < 2; half++) {
        uint32x4_t byte = vdupq_n_u32(row_bits[half]);
        uint32x4_t low = vtstq_u32(byte, low_bits);
        uint32x4_t high = vtstq_u32(byte, high_bits);
        acc[2 * half] = vaddq_f32(acc[2 * half], vbslq_f32(low, weighted[2 * half], zero));
        acc[2 * half + 1] = vaddq_f32(acc[2 * half + 1],
                                      vbslq_f32(high, weighted[2 * half + 1], zero));
    }
}

static void accumulate_group(const rbe_gemm_args *args, const rbe_row_block *block,
                             const float *x, size_t first_col, float32x4_t acc[][4],
                             float32x4_t *x_sum)
{
    const rbe_layout *layout = args->layout;
    size_t end_col = first_col + layout->group_size;
    size_t stride = layout->row_stride;

    for (size_t col = first_col; col < end_col; col += 16) {
        float32x4_t value[4];
        load_x_block(x, col, end_col, value);
        for (int q = 0; q < 4; q++) {
            x_sum[q] = vaddq_f32(x_sum[q], value[q]);
        }

        for (unsigned p = 0; p < args->planes_used; p++) {
            float weight = (float)(1u << (layout->bits - 1 - p));
            float32x4_t weighted[4];
            for (int q = 0; q < 4; q++) {
                weighted[q] = vmulq_n_f32(value[q], weight);
            }

            const uint8_t *bits = args->planes[p] + block->first_row * stride + col / 8;
            for (int r = 0; r < ROWS_PER_STEP; r++) {
                const uint8_t *row_bits = bits + (r < (int)block->count ? (size_t)r * stride : 0);
                add_set_bits(acc[r], row_bits, weighted);
            }
        }
    }
}

static void gemm_block(const rbe_gemm_args *args, const rbe_row_block *block, size_t m,
                       float center_offset)
{
    const rbe_layout *layout = args->layout;
    const float *x = args->x + m * layout->cols;
    float totals[ROWS_PER_STEP] = {0};

    for (size_t g = 0; g < layout->groups; g++) {
        float32x4_t acc[ROWS_PER_STEP][4];
        float32x4_t x_sum[4];
        float x_lanes[16];

        for (int q = 0; q < 4; q++) {
            x_sum[q] = vdupq_n_f32(0.0f);
            for (int r = 0; r < ROWS_PER_STEP; r++) {
                acc[r][q] = vdupq_n_f32(0.0f);
            }
        }
        accumulate_group(args, block, x, g * layout->group_size, acc, x_sum);
        for (int q = 0; q < 4; q++) {
            vst1q_f32(x_lanes + 4 * q, x_sum[q]);
        }

        for (size_t r = 0; r < block->count; r++) {
            float lanes[16];
            size_t param = (block->first_row + r) * layout->groups + g;
            for (int q = 0; q < 4; q++) {
                vst1q_f32(lanes + 4 * q, acc[r][q]);
            }
            totals[r] = rbe_gemm_add_group(totals[r], lanes, x_lanes, args->scale[param],
                                           center_offset, args->zero[param]);
        }
    }

    for (size_t r = 0; r < block->count; r++) {
        args->y[m * layout->rows + block->first_row + r] = totals[r];
    }
}

void rbe_gemm_rows_neon(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    if (rbe_gemm_uses_decode(args->layout->bits, args->planes_used)) {
        rbe_gemm_decode_rows_neon(args, row_begin, row_end);
        return;
    }
    rbe_gemm_for_row_blocks(args, row_begin, row_end, ROWS_PER_STEP, gemm_block);
}
#else
typedef int rbe_gemm_neon_unused;
#endif
