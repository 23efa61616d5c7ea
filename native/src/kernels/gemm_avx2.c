/*
 * AVX2 bit-serial product for P = 1 (see rbe_gemm_uses_decode for larger
 * P), 4 rows at a time. Each 16-lane accumulator is a
 * pair of 8-float registers. A plane byte becomes a lane mask by shifting
 * each lane's bit into the sign position, and blendv adds x only where the
 * bit is set. Elsewhere it adds +0.0, which leaves the sum unchanged because
 * an accumulator that starts at +0.0 never becomes -0.0, so the result
 * matches the scalar reference exactly.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>
#include <string.h>

#define ROWS_PER_STEP 4

RBE_TARGET_AVX2
static __m256 select_set_bits(unsigned byte, __m256 value)
{
    const __m256i to_sign = _mm256_setr_epi32(31, 30, 29, 28, 27, 26, 25, 24);
    __m256i shifted = _mm256_sllv_epi32(_mm256_set1_epi32((int)byte), to_sign);
    return _mm256_blendv_ps(_mm256_setzero_ps(), value, _mm256_castsi256_ps(shifted));
}

RBE_TARGET_AVX2
static void load_x_block(const float *x, size_t col, size_t end_col, __m256 *low, __m256 *high)
{
    if (col + 16 <= end_col) {
        *low = _mm256_loadu_ps(x + col);
        *high = _mm256_loadu_ps(x + col + 8);
        return;
    }
    float padded[16] = {0};
    memcpy(padded, x + col, (end_col - col) * sizeof(float));
    *low = _mm256_loadu_ps(padded);
    *high = _mm256_loadu_ps(padded + 8);
}

RBE_TARGET_AVX2
static void accumulate_group(const rbe_gemm_args *args, const rbe_row_block *block,
                             const float *x, size_t first_col, __m256 acc[][2], __m256 *x_sum)
{
    const rbe_layout *layout = args->layout;
    size_t end_col = first_col + layout->group_size;
    size_t stride = layout->row_stride;

    for (size_t col = first_col; col < end_col; col += 16) {
        __m256 low, high;
        load_x_block(x, col, end_col, &low, &high);
        x_sum[0] = _mm256_add_ps(x_sum[0], low);
        x_sum[1] = _mm256_add_ps(x_sum[1], high);

        for (unsigned p = 0; p < args->planes_used; p++) {
            __m256 weight = _mm256_set1_ps((float)(1u << (layout->bits - 1 - p)));
            __m256 weighted_low = _mm256_mul_ps(low, weight);
            __m256 weighted_high = _mm256_mul_ps(high, weight);
            const uint8_t *bits = args->planes[p] + block->first_row * stride + col / 8;

            for (int r = 0; r < ROWS_PER_STEP; r++) {
                const uint8_t *row_bits = bits + (r < (int)block->count ? (size_t)r * stride : 0);
                acc[r][0] = _mm256_add_ps(acc[r][0], select_set_bits(row_bits[0], weighted_low));
                acc[r][1] = _mm256_add_ps(acc[r][1], select_set_bits(row_bits[1], weighted_high));
            }
        }
    }
}

RBE_TARGET_AVX2
static void gemm_block(const rbe_gemm_args *args, const rbe_row_block *block, size_t m,
                       float center_offset)
{
    const rbe_layout *layout = args->layout;
    const float *x = args->x + m * layout->cols;
    float totals[ROWS_PER_STEP] = {0};

    for (size_t g = 0; g < layout->groups; g++) {
        __m256 acc[ROWS_PER_STEP][2];
        __m256 x_sum[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        float x_lanes[16];

        for (int r = 0; r < ROWS_PER_STEP; r++) {
            acc[r][0] = _mm256_setzero_ps();
            acc[r][1] = _mm256_setzero_ps();
        }
        accumulate_group(args, block, x, g * layout->group_size, acc, x_sum);
        _mm256_storeu_ps(x_lanes, x_sum[0]);
        _mm256_storeu_ps(x_lanes + 8, x_sum[1]);

        for (size_t r = 0; r < block->count; r++) {
            float lanes[16];
            size_t param = (block->first_row + r) * layout->groups + g;
            _mm256_storeu_ps(lanes, acc[r][0]);
            _mm256_storeu_ps(lanes + 8, acc[r][1]);
            totals[r] = rbe_gemm_add_group(totals[r], lanes, x_lanes, args->scale[param],
                                           center_offset, args->zero[param]);
        }
    }

    for (size_t r = 0; r < block->count; r++) {
        args->y[m * layout->rows + block->first_row + r] = totals[r];
    }
}

/* The decode kernel multiplies with FMA3, which a few AVX2 CPUs lack. */
static int cpu_has_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("fma");
}

void rbe_gemm_rows_avx2(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    if (rbe_gemm_uses_decode(args->layout->bits, args->planes_used)) {
        if (cpu_has_fma()) {
            rbe_gemm_decode_rows_avx2(args, row_begin, row_end);
        } else {
            rbe_gemm_decode_rows_scalar(args, row_begin, row_end);
        }
        return;
    }
    rbe_gemm_for_row_blocks(args, row_begin, row_end, ROWS_PER_STEP, gemm_block);
}
#else
typedef int rbe_gemm_avx2_unused;
#endif
