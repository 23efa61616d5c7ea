/*
 * NEON (aarch64) decode path of the product (see rbe_gemm_choose_path),
 * laid out as gemm_decode_avx2.c. It decodes 4 rows per run of 256 columns
 * into a small buffer of integer codes. Then each 4 weights and batch entry
 * take one fused multiply-add (vfmaq_f32, rounded once like fmaf). Each
 * plane becomes 16-bit lanes by a broadcast, vtst against the lane's bit
 * and an or of the plane's bit value. The 16 lanes of the accumulation
 * order are four registers of 4.
 *
 * armv7 keeps the scalar reference: its NEON flushes subnormal floats to
 * zero, so it could not match fmaf on subnormal activations.
 */
#include "../internal.h"

#if defined(RBE_HAVE_NEON) && defined(__aarch64__)
#include <arm_neon.h>

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

/* Accumulator of one (row, batch entry): lanes 4 q .. 4 q + 3 in q[q]. */
typedef struct lanes16 {
    float32x4_t q[4];
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

static const uint16_t kLaneBits[16] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048,
                                       4096, 8192, 16384, 32768};

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

static lanes16 zero_lanes(void)
{
    lanes16 result;
    for (int q = 0; q < 4; q++) {
        result.q[q] = vdupq_n_f32(0.0f);
    }
    return result;
}

/* The pairwise lane sum of rbe_gemm_reduce_lanes, with the same additions. */
static inline float reduce_lanes(lanes16 v)
{
    float32x4_t level8_low = vaddq_f32(v.q[0], v.q[2]);
    float32x4_t level8_high = vaddq_f32(v.q[1], v.q[3]);
    float32x4_t level4 = vaddq_f32(level8_low, level8_high);
    float32x2_t level2 = vadd_f32(vget_low_f32(level4), vget_high_f32(level4));
    return vget_lane_f32(level2, 0) + vget_lane_f32(level2, 1);
}

/* Writes the codes c_P of one row's chunk; plane p gives bit B-1-p. */
static void decode_row_chunk(const rbe_gemm_args *args, size_t r, const chunk *ch,
                             span_state *st)
{
    const rbe_layout *layout = args->layout;
    const uint16x8_t low_bits = vld1q_u16(kLaneBits);
    const uint16x8_t high_bits = vld1q_u16(kLaneBits + 8);
    size_t offset = (st->first_row + r) * layout->row_stride + ch->first_col / 8;
    size_t bytes = (ch->cols + 7) / 8;

    for (size_t t = 0; t < ch->blocks; t++) {
        uint16x8_t low = vdupq_n_u16(0);
        uint16x8_t high = vdupq_n_u16(0);

        for (unsigned p = 0; p < args->planes_used; p++) {
            const uint8_t *at = args->planes[p] + offset + 2 * t;
            /* The second byte of a partial last block may lie past the row. */
            unsigned word = at[0] | (2 * t + 1 < bytes ? (unsigned)at[1] << 8 : 0u);
            uint16x8_t broadcast = vdupq_n_u16((uint16_t)word);
            uint16x8_t value = vdupq_n_u16((uint16_t)(1u << (layout->bits - 1 - p)));
            low = vorrq_u16(low, vandq_u16(vtstq_u16(broadcast, low_bits), value));
            high = vorrq_u16(high, vandq_u16(vtstq_u16(broadcast, high_bits), value));
        }
        vst1q_u16(st->codes[r] + 16 * t, low);
        vst1q_u16(st->codes[r] + 16 * t + 8, high);
    }
}

/*
 * Copies the span's x for the chunk to x_copy, zero past the last column,
 * adds it to the running x lanes and keeps each group's sum.
 */
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
            for (int q = 0; q < 4; q++) {
                lanes.q[q] = vaddq_f32(lanes.q[q], vld1q_f32(copy + 4 * q));
            }
            if ((ch->group_ends >> t) & 1u) {
                st->x_sums[i][end++] = reduce_lanes(lanes);
                lanes = zero_lanes();
            }
        }
        st->x_lanes[i] = lanes;
    }
}

/*
 * Multiplies the chunk's codes of `tile_rows` rows from r with `tile_batch`
 * batch entries from span index first. Both are constants in every caller,
 * so the accumulators stay in registers.
 */
static inline __attribute__((always_inline)) void multiply_tile(
    const rbe_gemm_args *args, const chunk *ch, span_state *st, size_t r, size_t first,
    const int tile_rows, const int tile_batch)
{
    const rbe_layout *layout = args->layout;
    float center_offset = rbe_center_offset(layout->bits, args->planes_used);
    lanes16 acc[2][4];
    int end = 0;

    for (int k = 0; k < tile_rows; k++) {
        for (int i = 0; i < tile_batch; i++) {
            acc[k][i] = st->acc[r + (size_t)k][first + (size_t)i];
        }
    }

    for (size_t t = 0; t < ch->blocks; t++) {
        for (int q = 0; q < 4; q++) {
            float32x4_t weight[2];
            for (int k = 0; k < tile_rows; k++) {
                uint16x4_t codes = vld1_u16(st->codes[r + (size_t)k] + 16 * t + 4 * q);
                weight[k] = vcvtq_f32_u32(vmovl_u16(codes));
            }
            for (int i = 0; i < tile_batch; i++) {
                float32x4_t x_part = vld1q_f32(st->x_copy[first + (size_t)i] + 16 * t + 4 * q);
                for (int k = 0; k < tile_rows; k++) {
                    acc[k][i].q[q] = vfmaq_f32(acc[k][i].q[q], x_part, weight[k]);
                }
            }
        }

        if ((ch->group_ends >> t) & 1u) {
            size_t g = (ch->first_col + 16 * t) / layout->group_size;
            for (int k = 0; k < tile_rows; k++) {
                size_t row = st->first_row + r + (size_t)k;
                size_t param = row * layout->groups + g;
                for (int i = 0; i < tile_batch; i++) {
                    float *y = args->y + (st->first_m + first + (size_t)i) * layout->rows + row;
                    *y = rbe_gemm_add_group_sums(*y, reduce_lanes(acc[k][i]),
                                                 st->x_sums[first + (size_t)i][end],
                                                 args->scale[param], center_offset,
                                                 args->zero[param]);
                    acc[k][i] = zero_lanes();
                }
            }
            end++;
        }
    }

    for (int k = 0; k < tile_rows; k++) {
        for (int i = 0; i < tile_batch; i++) {
            st->acc[r + (size_t)k][first + (size_t)i] = acc[k][i];
        }
    }
}

/*
 * Covers the rows and the span's batch with tiles shaped by the batch size:
 * 2 rows x 1, 1 x 2 or 1 x 4 accumulators of 4 registers. Partial tiles at
 * the edges run one accumulator at a time.
 */
static void multiply_chunk(const rbe_gemm_args *args, const chunk *ch, span_state *st)
{
    size_t tile_batch = 1;
    while (tile_batch < 4 && tile_batch * 2 <= st->batch) {
        tile_batch *= 2;
    }
    size_t tile_rows = tile_batch == 1 ? 2 : 1;

    for (size_t r = 0; r < st->rows; r += tile_rows) {
        for (size_t first = 0; first < st->batch; first += tile_batch) {
            size_t rows = st->rows - r < tile_rows ? st->rows - r : tile_rows;
            size_t count = st->batch - first < tile_batch ? st->batch - first : tile_batch;

            if (rows < tile_rows || count < tile_batch) {
                for (size_t k = 0; k < rows; k++) {
                    for (size_t i = 0; i < count; i++) {
                        multiply_tile(args, ch, st, r + k, first + i, 1, 1);
                    }
                }
            } else if (tile_batch == 1) {
                multiply_tile(args, ch, st, r, first, 2, 1);
            } else if (tile_batch == 2) {
                multiply_tile(args, ch, st, r, first, 1, 2);
            } else {
                multiply_tile(args, ch, st, r, first, 1, 4);
            }
        }
    }
}

static void run_span(const rbe_gemm_args *args, span_state *st)
{
    const rbe_layout *layout = args->layout;

    for (size_t i = 0; i < st->batch; i++) {
        st->x_lanes[i] = zero_lanes();
        for (size_t r = 0; r < st->rows; r++) {
            st->acc[r][i] = zero_lanes();
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

void rbe_gemm_decode_rows_neon(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
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
typedef int rbe_gemm_decode_neon_unused;
#endif
