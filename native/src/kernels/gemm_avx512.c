/*
 * AVX-512 bit-serial product for P = 1, 16 rows at a time; larger P take
 * the decode path (gemm_decode_avx512.c). A 16-bit slice of a plane row is
 * itself the write mask of a masked add, so each plane costs one
 * instruction per 16 weights, and one load of x feeds 16 rows. Sixteen
 * independent accumulators hide the add latency.
 *
 * On the Zen 4 development machine this kernel runs at 1.0e9 to 1.9e9
 * masked adds per second. The same loop with constant masks runs at 6e9 to
 * 7e9, so loading each 16-bit mask into a mask register is the bottleneck;
 * from P = 2 on, decoding and multiplying is faster.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>
#include <string.h>

#define ROWS_PER_STEP 16

RBE_TARGET_AVX512
static __m512 load_x_block(const float *x, size_t col, size_t end_col)
{
    if (col + 16 <= end_col) {
        return _mm512_loadu_ps(x + col);
    }
    __mmask16 valid = (__mmask16)((1u << (end_col - col)) - 1u);
    return _mm512_maskz_loadu_ps(valid, x + col);
}

/* The 16 accumulators must live in registers, so the row loop is spelled out. */
#define RBE_FOR_16_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) \
    X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

RBE_TARGET_AVX512
static __mmask16 load_mask(const uint8_t *bits)
{
    uint16_t mask;
    memcpy(&mask, bits, sizeof(mask));
    return (__mmask16)mask;
}

/* Full blocks of 16 rows: one masked add per row, plane and 16 columns. */
RBE_TARGET_AVX512
static void accumulate_group_16(const rbe_gemm_args *args, const rbe_row_block *block,
                                const float *x, size_t first_col, __m512 *acc, __m512 *x_sum)
{
    const rbe_layout *layout = args->layout;
    size_t end_col = first_col + layout->group_size;
    size_t stride = layout->row_stride;
    unsigned planes_used = args->planes_used;
    const uint8_t *base[16];
    __m512 weight[16];
    __m512 sum = *x_sum;

    for (unsigned p = 0; p < planes_used; p++) {
        base[p] = args->planes[p] + block->first_row * stride;
        weight[p] = _mm512_set1_ps((float)(1u << (layout->bits - 1 - p)));
    }

#define RBE_DECLARE(r) __m512 acc##r = _mm512_setzero_ps();
    RBE_FOR_16_ROWS(RBE_DECLARE)
#undef RBE_DECLARE

    for (size_t col = first_col; col < end_col; col += 16) {
        __m512 value = load_x_block(x, col, end_col);
        sum = _mm512_add_ps(sum, value);

        for (unsigned p = 0; p < planes_used; p++) {
            __m512 weighted = _mm512_mul_ps(value, weight[p]);
            const uint8_t *bits = base[p] + col / 8;
#define RBE_ADD(r) acc##r = _mm512_mask_add_ps(acc##r, load_mask(bits + (r) * stride), \
                                               acc##r, weighted);
            RBE_FOR_16_ROWS(RBE_ADD)
#undef RBE_ADD
        }
    }

    *x_sum = sum;
#define RBE_STORE(r) acc[r] = acc##r;
    RBE_FOR_16_ROWS(RBE_STORE)
#undef RBE_STORE
}

/* The last block of fewer than 16 rows: same order, accumulators in memory. */
RBE_TARGET_AVX512
static void accumulate_group_tail(const rbe_gemm_args *args, const rbe_row_block *block,
                                  const float *x, size_t first_col, __m512 *acc, __m512 *x_sum)
{
    const rbe_layout *layout = args->layout;
    size_t end_col = first_col + layout->group_size;
    size_t stride = layout->row_stride;

    for (size_t r = 0; r < block->count; r++) {
        acc[r] = _mm512_setzero_ps();
    }

    for (size_t col = first_col; col < end_col; col += 16) {
        __m512 value = load_x_block(x, col, end_col);
        *x_sum = _mm512_add_ps(*x_sum, value);

        for (unsigned p = 0; p < args->planes_used; p++) {
            __m512 weighted = _mm512_mul_ps(value,
                _mm512_set1_ps((float)(1u << (layout->bits - 1 - p))));
            const uint8_t *bits = args->planes[p] + block->first_row * stride + col / 8;

            for (size_t r = 0; r < block->count; r++) {
                acc[r] = _mm512_mask_add_ps(acc[r], load_mask(bits + r * stride), acc[r],
                                            weighted);
            }
        }
    }
}

RBE_TARGET_AVX512
static void gemm_block(const rbe_gemm_args *args, const rbe_row_block *block, size_t m,
                       float center_offset)
{
    const rbe_layout *layout = args->layout;
    const float *x = args->x + m * layout->cols;
    float totals[ROWS_PER_STEP] = {0};

    for (size_t g = 0; g < layout->groups; g++) {
        __m512 acc[ROWS_PER_STEP];
        __m512 x_sum = _mm512_setzero_ps();
        float x_lanes[16];

        if (block->count == ROWS_PER_STEP) {
            accumulate_group_16(args, block, x, g * layout->group_size, acc, &x_sum);
        } else {
            accumulate_group_tail(args, block, x, g * layout->group_size, acc, &x_sum);
        }
        _mm512_storeu_ps(x_lanes, x_sum);

        for (size_t r = 0; r < block->count; r++) {
            float lanes[16];
            size_t param = (block->first_row + r) * layout->groups + g;
            _mm512_storeu_ps(lanes, acc[r]);
            totals[r] = rbe_gemm_add_group(totals[r], lanes, x_lanes, args->scale[param],
                                           center_offset, args->zero[param]);
        }
    }

    for (size_t r = 0; r < block->count; r++) {
        args->y[m * layout->rows + block->first_row + r] = totals[r];
    }
}

/* The decode kernel needs VBMI and GFNI, which some AVX-512 CPUs lack. */
static int cpu_has_decode_features(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi") &&
           __builtin_cpu_supports("gfni");
}

void rbe_gemm_rows_avx512(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    if (!rbe_gemm_uses_decode(args->layout->bits, args->planes_used)) {
        rbe_gemm_for_row_blocks(args, row_begin, row_end, ROWS_PER_STEP, gemm_block);
    } else if (cpu_has_decode_features()) {
        rbe_gemm_decode_rows_avx512(args, row_begin, row_end);
    } else {
        rbe_gemm_decode_rows_avx2(args, row_begin, row_end);
    }
}
#else
typedef int rbe_gemm_avx512_unused;
#endif
