/*
 * AVX2 decode path of the product (see rbe_gemm_uses_decode), laid out as
 * gemm_decode_avx512.c: 4 rows decoded per run of 256 columns into a small
 * buffer of integer codes, then one fused multiply-add per 8 weights and
 * batch entry. AVX2 has no bit transpose, so each plane becomes 16-bit
 * lanes by a broadcast, a test of the lane's bit (and, compare) and an or
 * of the plane's bit value: 4 instructions per plane and 16 weights. The
 * 16 lanes of the accumulation order are two registers of 8.
 *
 * The AVX-512 family also runs this kernel on CPUs without VBMI or GFNI.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>

#define RBE_TARGET_DECODE __attribute__((target("avx2,fma")))
#define RBE_ALWAYS_INLINE inline __attribute__((always_inline))

#define CHUNK_COLS 256
#define CHUNK_BLOCKS (CHUNK_COLS / 16)
/* Rows decoded per chunk; they share the copy and the sums of x. */
#define ROWS_PER_STEP 4
/* Batch entries of one pass over the row block; x_copy holds their chunk. */
#define BATCH_SPAN 8

typedef struct chunk {
    size_t first_col;
    size_t cols;           /* valid columns, 1..CHUNK_COLS */
    size_t blocks;         /* 16-column blocks, the last one maybe partial */
    uint32_t group_ends;   /* bit t: a group ends with block t */
} chunk;

/* Accumulator of one (row, batch entry): lanes 0..7 and 8..15. */
typedef struct lanes16 {
    __m256 low;
    __m256 high;
} lanes16;

typedef struct span_state {
    size_t first_row;
    size_t rows;
    size_t first_m;
    size_t batch;
    lanes16 acc[ROWS_PER_STEP][BATCH_SPAN];
    lanes16 x_lanes[BATCH_SPAN];
    float x_sums[BATCH_SPAN][CHUNK_BLOCKS];    /* per group that ends in the chunk */
    float x_copy[BATCH_SPAN][CHUNK_COLS];      /* zero past the last column */
    uint16_t codes[ROWS_PER_STEP][CHUNK_COLS];
} span_state;

static chunk chunk_at(const rbe_layout *layout, size_t first_col)
{
    chunk result;
    size_t left = layout->cols - first_col;

    result.first_col = first_col;
    result.cols = left < CHUNK_COLS ? left : CHUNK_COLS;
    result.blocks = (result.cols + 15) / 16;
    result.group_ends = 0;
    if (first_col + result.cols == layout->cols) {
        result.group_ends = 1u << (result.blocks - 1);
    }
    if (layout->groups > 1) {
        /* Groups then span whole blocks, so they end every group_size / 16 blocks. */
        size_t group_blocks = layout->group_size / 16;
        size_t next_end = group_blocks - (first_col / 16) % group_blocks - 1;
        for (size_t t = next_end; t < result.blocks; t += group_blocks) {
            result.group_ends |= 1u << t;
        }
    }
    return result;
}

/* The pairwise lane sum of rbe_gemm_reduce_lanes, with the same additions. */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE float reduce_lanes(lanes16 v)
{
    __m256 level8 = _mm256_add_ps(v.low, v.high);
    __m128 level4 = _mm_add_ps(_mm256_castps256_ps128(level8), _mm256_extractf128_ps(level8, 1));
    __m128 level2 = _mm_add_ps(level4, _mm_movehl_ps(level4, level4));
    __m128 level1 = _mm_add_ss(level2, _mm_shuffle_ps(level2, level2, 1));
    return _mm_cvtss_f32(level1);
}

/* Writes the codes c_P of one row's chunk; plane p gives bit B-1-p. */
RBE_TARGET_DECODE
static void decode_row_chunk(const rbe_gemm_args *args, size_t r, const chunk *ch,
                             span_state *st)
{
    const rbe_layout *layout = args->layout;
    const __m256i lane_bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024,
                                               2048, 4096, 8192, 16384, (short)0x8000);
    size_t offset = (st->first_row + r) * layout->row_stride + ch->first_col / 8;
    size_t bytes = (ch->cols + 7) / 8;

    for (size_t t = 0; t < ch->blocks; t++) {
        __m256i code = _mm256_setzero_si256();

        for (unsigned p = 0; p < args->planes_used; p++) {
            const uint8_t *at = args->planes[p] + offset + 2 * t;
            /* The second byte of a partial last block may lie past the row. */
            unsigned word = at[0] | (2 * t + 1 < bytes ? (unsigned)at[1] << 8 : 0u);
            __m256i set = _mm256_and_si256(_mm256_set1_epi16((short)word), lane_bit);
            __m256i mask = _mm256_cmpeq_epi16(set, lane_bit);
            __m256i value = _mm256_set1_epi16((short)(1u << (layout->bits - 1 - p)));
            code = _mm256_or_si256(code, _mm256_and_si256(mask, value));
        }
        _mm256_storeu_si256((__m256i *)(st->codes[r] + 16 * t), code);
    }
}

/*
 * Copies the span's x for the chunk to x_copy, zero past the last column,
 * adds it to the running x lanes and keeps each group's sum.
 */
RBE_TARGET_DECODE
static void load_x_chunk(const rbe_gemm_args *args, const chunk *ch, span_state *st)
{
    size_t cols = args->layout->cols;

    for (size_t i = 0; i < st->batch; i++) {
        const float *x_row = args->x + (st->first_m + i) * cols + ch->first_col;
        lanes16 lanes = st->x_lanes[i];
        int end = 0;

        for (size_t t = 0; t < ch->blocks; t++) {
            float *copy = st->x_copy[i] + 16 * t;
            size_t valid = ch->cols - 16 * t < 16 ? ch->cols - 16 * t : 16;
            for (size_t j = 0; j < 16; j++) {
                copy[j] = j < valid ? x_row[16 * t + j] : 0.0f;
            }
            lanes.low = _mm256_add_ps(lanes.low, _mm256_loadu_ps(copy));
            lanes.high = _mm256_add_ps(lanes.high, _mm256_loadu_ps(copy + 8));
            if ((ch->group_ends >> t) & 1u) {
                st->x_sums[i][end++] = reduce_lanes(lanes);
                lanes.low = _mm256_setzero_ps();
                lanes.high = _mm256_setzero_ps();
            }
        }
        st->x_lanes[i] = lanes;
    }
}

RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE __m256 load_weights(const uint16_t *codes)
{
    __m128i words = _mm_loadu_si128((const __m128i *)codes);
    return _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(words));
}

/*
 * Multiplies the chunk's codes of `tile_rows` rows from r with `tile_batch`
 * batch entries from span index first; both are constants in every caller,
 * so the accumulators stay in registers.
 */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE void multiply_tile(const rbe_gemm_args *args, const chunk *ch,
                                            span_state *st, size_t r, size_t first,
                                            const int tile_rows, const int tile_batch)
{
    const rbe_layout *layout = args->layout;
    float center_offset = rbe_center_offset(layout->bits, args->planes_used);
    lanes16 acc[ROWS_PER_STEP][4];
    int end = 0;

    for (int q = 0; q < tile_rows; q++) {
        for (int i = 0; i < tile_batch; i++) {
            acc[q][i] = st->acc[r + (size_t)q][first + (size_t)i];
        }
    }

    for (size_t t = 0; t < ch->blocks; t++) {
        for (int half = 0; half < 2; half++) {
            __m256 weight[ROWS_PER_STEP];
            for (int q = 0; q < tile_rows; q++) {
                weight[q] = load_weights(st->codes[r + (size_t)q] + 16 * t + 8 * half);
            }
            for (int i = 0; i < tile_batch; i++) {
                __m256 x_half = _mm256_loadu_ps(st->x_copy[first + (size_t)i] + 16 * t + 8 * half);
                for (int q = 0; q < tile_rows; q++) {
                    __m256 *lane = half ? &acc[q][i].high : &acc[q][i].low;
                    *lane = _mm256_fmadd_ps(x_half, weight[q], *lane);
                }
            }
        }

        if ((ch->group_ends >> t) & 1u) {
            size_t g = (ch->first_col + 16 * t) / layout->group_size;
            for (int q = 0; q < tile_rows; q++) {
                size_t row = st->first_row + r + (size_t)q;
                size_t param = row * layout->groups + g;
                for (int i = 0; i < tile_batch; i++) {
                    float *y = args->y + (st->first_m + first + (size_t)i) * layout->rows + row;
                    *y = rbe_gemm_add_group_sums(*y, reduce_lanes(acc[q][i]),
                                                 st->x_sums[first + (size_t)i][end],
                                                 args->scale[param], center_offset,
                                                 args->zero[param]);
                    acc[q][i].low = _mm256_setzero_ps();
                    acc[q][i].high = _mm256_setzero_ps();
                }
            }
            end++;
        }
    }

    for (int q = 0; q < tile_rows; q++) {
        for (int i = 0; i < tile_batch; i++) {
            st->acc[r + (size_t)q][first + (size_t)i] = acc[q][i];
        }
    }
}

/*
 * Covers the rows and the span's batch with tiles of 8 registers of
 * accumulators, shaped by the batch size: 4 rows x 1, 2 x 2 or 1 x 4.
 * Partial tiles at the edges run row by row.
 */
RBE_TARGET_DECODE
static void multiply_chunk(const rbe_gemm_args *args, const chunk *ch, span_state *st)
{
    size_t tile_batch = st->batch >= 4 ? 4 : st->batch >= 2 ? 2 : 1;
    size_t tile_rows = 4 / tile_batch;

    for (size_t r = 0; r < st->rows; r += tile_rows) {
        for (size_t first = 0; first < st->batch; first += tile_batch) {
            size_t rows = st->rows - r < tile_rows ? st->rows - r : tile_rows;
            size_t count = st->batch - first < tile_batch ? st->batch - first : tile_batch;

            if (rows < tile_rows || count < tile_batch) {
                for (size_t q = 0; q < rows; q++) {
                    for (size_t i = 0; i < count; i++) {
                        multiply_tile(args, ch, st, r + q, first + i, 1, 1);
                    }
                }
            } else if (tile_batch == 1) {
                multiply_tile(args, ch, st, r, first, 4, 1);
            } else if (tile_batch == 2) {
                multiply_tile(args, ch, st, r, first, 2, 2);
            } else {
                multiply_tile(args, ch, st, r, first, 1, 4);
            }
        }
    }
}

RBE_TARGET_DECODE
static void run_span(const rbe_gemm_args *args, span_state *st)
{
    const rbe_layout *layout = args->layout;

    for (size_t i = 0; i < st->batch; i++) {
        st->x_lanes[i].low = _mm256_setzero_ps();
        st->x_lanes[i].high = _mm256_setzero_ps();
        for (size_t r = 0; r < st->rows; r++) {
            st->acc[r][i] = st->x_lanes[i];
            args->y[(st->first_m + i) * layout->rows + st->first_row + r] = 0.0f;
        }
    }

    for (size_t col = 0; col < layout->cols; col += CHUNK_COLS) {
        chunk ch = chunk_at(layout, col);

        for (size_t r = 0; r < st->rows; r++) {
            decode_row_chunk(args, r, &ch, st);
        }
        load_x_chunk(args, &ch, st);
        multiply_chunk(args, &ch, st);
    }
}

void rbe_gemm_decode_rows_avx2(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    span_state st;

    for (size_t row = row_begin; row < row_end; row += ROWS_PER_STEP) {
        st.first_row = row;
        st.rows = row_end - row < ROWS_PER_STEP ? row_end - row : ROWS_PER_STEP;
        for (size_t m = 0; m < args->batch; m += BATCH_SPAN) {
            st.first_m = m;
            st.batch = args->batch - m < BATCH_SPAN ? args->batch - m : BATCH_SPAN;
            run_span(args, &st);
        }
    }
}
#else
typedef int rbe_gemm_decode_avx2_unused;
#endif
