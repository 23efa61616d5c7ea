/*
 * AVX2 decode path of the product (see rbe_gemm_choose_path), laid out as
 * gemm_decode_avx512.c. It decodes 4 rows per run of 256 columns into a
 * small buffer of integer codes. Then each 8 weights and batch entry take
 * one fused multiply-add. The codes come from a byte transpose by unpacks
 * and an 8x8 bit transpose by shifts and masks, as AVX2 has no GFNI. The
 * 16 lanes of the accumulation order are two registers of 8.
 *
 * The AVX-512 family also runs this kernel on CPUs without VBMI or GFNI.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>
#include <string.h>

#define RBE_TARGET_DECODE __attribute__((target("avx2,fma")))
#define RBE_ALWAYS_INLINE inline __attribute__((always_inline))

#define CHUNK_COLS 256
#define CHUNK_BLOCKS (CHUNK_COLS / 16)
/* Rows decoded per chunk; they share the copy and the sums of x. */
#define ROWS_PER_STEP 4
/* Batch entries of one pass over the row block; x_copy contains their chunk. */
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

/*
 * Transposes the 8x8 bit matrix in each 64-bit lane: bit 8 r + c moves to
 * bit 8 c + r, by three rounds of swapping blocks across the diagonal.
 */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE __m256i transpose_bits(__m256i x)
{
    const __m256i swap1 = _mm256_set1_epi64x(0x00AA00AA00AA00AAll);
    const __m256i swap2 = _mm256_set1_epi64x(0x0000CCCC0000CCCCll);
    const __m256i swap4 = _mm256_set1_epi64x(0x00000000F0F0F0F0ll);
    __m256i t;

    t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 7)), swap1);
    x = _mm256_xor_si256(x, _mm256_xor_si256(t, _mm256_slli_epi64(t, 7)));
    t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 14)), swap2);
    x = _mm256_xor_si256(x, _mm256_xor_si256(t, _mm256_slli_epi64(t, 14)));
    t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 28)), swap4);
    return _mm256_xor_si256(x, _mm256_xor_si256(t, _mm256_slli_epi64(t, 28)));
}

RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE __m256i unpack8(__m256i a, __m256i b, int high, int used)
{
    if (!used) {
        return _mm256_setzero_si256();
    }
    return high ? _mm256_unpackhi_epi8(a, b) : _mm256_unpacklo_epi8(a, b);
}

RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE __m256i unpack16(__m256i a, __m256i b, int high, int used)
{
    if (!used) {
        return _mm256_setzero_si256();
    }
    return high ? _mm256_unpackhi_epi16(a, b) : _mm256_unpacklo_epi16(a, b);
}

/*
 * Turns 8 registers of plane bytes (slot s of a byte group) into 8 registers
 * of code bytes with bit s from slot s. A byte transpose by unpacks gathers
 * the 8 slots of each 8-column group into one qword, and transpose_bits
 * turns it into one code byte per column. The unpacks work inside 128-bit
 * lanes, so lane L of output register i contains block 8 L + i. Bit s of
 * `used` is set when slot s may be nonzero, and unpacks of zeros are skipped.
 */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE void transpose_slots(const __m256i *slot, unsigned used,
                                              __m256i *codes)
{
    for (int a = 0; a < 2; a++) {
        __m256i pair01 = unpack8(slot[0], slot[1], a, used & 0x03u);
        __m256i pair23 = unpack8(slot[2], slot[3], a, used & 0x0Cu);
        __m256i pair45 = unpack8(slot[4], slot[5], a, used & 0x30u);
        __m256i pair67 = unpack8(slot[6], slot[7], a, used & 0xC0u);
        for (int b = 0; b < 2; b++) {
            __m256i quad0 = unpack16(pair01, pair23, b, used & 0x0Fu);
            __m256i quad1 = unpack16(pair45, pair67, b, used & 0xF0u);
            for (int c = 0; c < 2; c++) {
                __m256i octet = c ? _mm256_unpackhi_epi32(quad0, quad1)
                                  : _mm256_unpacklo_epi32(quad0, quad1);
                codes[4 * a + 2 * b + c] = transpose_bits(octet);
            }
        }
    }
}

/* Loads the first `bytes` (below 32) plane bytes, zero past them. */
RBE_TARGET_DECODE
static __m256i load_partial(const uint8_t *plane, size_t bytes)
{
    uint8_t padded[32] = {0};

    memcpy(padded, plane, bytes);
    return _mm256_loadu_si256((const __m256i *)padded);
}

/* Loads the 32 plane bytes of code bit `bit` (zero when no used plane gives it). */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE __m256i load_slot(const rbe_gemm_args *args, unsigned bit,
                                           size_t offset, size_t bytes)
{
    unsigned bits = args->layout->bits;

    if (bit >= bits || bits - 1 - bit >= args->planes_used) {
        return _mm256_setzero_si256();
    }
    const uint8_t *plane = args->planes[bits - 1 - bit] + offset;
    if (bytes >= 32) {
        return _mm256_loadu_si256((const __m256i *)plane);
    }
    return load_partial(plane, bytes);
}

/*
 * Writes the codes c_P of one row's chunk in column order. Plane p gives
 * bit B-1-p, so the low byte of a code comes from the slots of bits 0..7
 * and the high byte from bits 8..15. Bytes past the chunk load as zero.
 */
RBE_TARGET_DECODE
static void decode_row_chunk(const rbe_gemm_args *args, size_t r, const chunk *ch,
                             span_state *st)
{
    const rbe_layout *layout = args->layout;
    unsigned bits = layout->bits;
    unsigned first_bit = bits > args->planes_used ? bits - args->planes_used : 0;
    unsigned used = ((1u << bits) - 1u) & ~((1u << first_bit) - 1u);
    size_t offset = (st->first_row + r) * layout->row_stride + ch->first_col / 8;
    size_t bytes = (ch->cols + 7) / 8;
    uint16_t *out = st->codes[r];
    __m256i slot[16];
    __m256i low[8];
    __m256i high[8];

    for (unsigned bit = 0; bit < 8; bit++) {
        slot[bit] = load_slot(args, bit, offset, bytes);
    }
    transpose_slots(slot, used & 0xFFu, low);
    if (bits > 8) {
        for (unsigned bit = 8; bit < 16; bit++) {
            slot[bit] = load_slot(args, bit, offset, bytes);
        }
        transpose_slots(slot + 8, used >> 8, high);
    } else {
        for (int i = 0; i < 8; i++) {
            high[i] = _mm256_setzero_si256();
        }
    }

    /* Register i contains blocks i (lane 0) and 8 + i (lane 1). */
    for (int i = 0; i < 8; i++) {
        __m256i first = _mm256_unpacklo_epi8(low[i], high[i]);
        __m256i second = _mm256_unpackhi_epi8(low[i], high[i]);
        _mm256_storeu_si256((__m256i *)(out + 16 * i),
                            _mm256_permute2x128_si256(first, second, 0x20));
        _mm256_storeu_si256((__m256i *)(out + 16 * (8 + i)),
                            _mm256_permute2x128_si256(first, second, 0x31));
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
            size_t valid = ch->cols - 16 * t;
            if (valid >= 16) {
                _mm256_storeu_ps(copy, _mm256_loadu_ps(x_row + 16 * t));
                _mm256_storeu_ps(copy + 8, _mm256_loadu_ps(x_row + 16 * t + 8));
            } else {
                for (size_t j = 0; j < 16; j++) {
                    copy[j] = j < valid ? x_row[16 * t + j] : 0.0f;
                }
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
 * batch entries from span index first. Both are constants in every caller,
 * so the accumulators stay in registers.
 */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE void multiply_tile(const rbe_gemm_args *args, const chunk *ch,
                                            span_state *st, size_t r, size_t first,
                                            const int tile_rows, const int tile_batch)
{
    const rbe_layout *layout = args->layout;
    float center_offset = rbe_center_offset(layout->bits, args->planes_used);
    __m256 low[ROWS_PER_STEP][4];
    __m256 high[ROWS_PER_STEP][4];
    int end = 0;

#pragma GCC unroll 4
    for (int q = 0; q < tile_rows; q++) {
#pragma GCC unroll 4
        for (int i = 0; i < tile_batch; i++) {
            low[q][i] = st->acc[r + (size_t)q][first + (size_t)i].low;
            high[q][i] = st->acc[r + (size_t)q][first + (size_t)i].high;
        }
    }

    for (size_t t = 0; t < ch->blocks; t++) {
        __m256 weight_low[ROWS_PER_STEP];
        __m256 weight_high[ROWS_PER_STEP];

#pragma GCC unroll 4
        for (int q = 0; q < tile_rows; q++) {
            weight_low[q] = load_weights(st->codes[r + (size_t)q] + 16 * t);
            weight_high[q] = load_weights(st->codes[r + (size_t)q] + 16 * t + 8);
        }
#pragma GCC unroll 4
        for (int i = 0; i < tile_batch; i++) {
            const float *x_block = st->x_copy[first + (size_t)i] + 16 * t;
            __m256 x_low = _mm256_loadu_ps(x_block);
            __m256 x_high = _mm256_loadu_ps(x_block + 8);
#pragma GCC unroll 4
            for (int q = 0; q < tile_rows; q++) {
                low[q][i] = _mm256_fmadd_ps(x_low, weight_low[q], low[q][i]);
                high[q][i] = _mm256_fmadd_ps(x_high, weight_high[q], high[q][i]);
            }
        }

        if ((ch->group_ends >> t) & 1u) {
            size_t g = (ch->first_col + 16 * t) / layout->group_size;
#pragma GCC unroll 4
            for (int q = 0; q < tile_rows; q++) {
                size_t row = st->first_row + r + (size_t)q;
                size_t param = row * layout->groups + g;
#pragma GCC unroll 4
                for (int i = 0; i < tile_batch; i++) {
                    float *y = args->y + (st->first_m + first + (size_t)i) * layout->rows + row;
                    lanes16 sum = {low[q][i], high[q][i]};
                    *y = rbe_gemm_add_group_sums(*y, reduce_lanes(sum),
                                                 st->x_sums[first + (size_t)i][end],
                                                 args->scale[param], center_offset,
                                                 args->zero[param]);
                    low[q][i] = _mm256_setzero_ps();
                    high[q][i] = _mm256_setzero_ps();
                }
            }
            end++;
        }
    }

#pragma GCC unroll 4
    for (int q = 0; q < tile_rows; q++) {
#pragma GCC unroll 4
        for (int i = 0; i < tile_batch; i++) {
            st->acc[r + (size_t)q][first + (size_t)i].low = low[q][i];
            st->acc[r + (size_t)q][first + (size_t)i].high = high[q][i];
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
    size_t tile_batch = 1;
    while (tile_batch < 4 && tile_batch * 2 <= st->batch) {
        tile_batch *= 2;
    }
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
