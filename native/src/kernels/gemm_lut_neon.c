/*
 * NEON (aarch64) lookup path of the product (see rbe_gemm_choose_path and
 * the order in gemm_lut_scalar.c), laid out as gemm_lut_avx512.c with 4
 * rows per block: lane i of every vector is row i. A run of 128 columns
 * loads 16 plane bytes of each row and transposes them as 4 x 4 dwords.
 * A 16-float table sits in four q registers, and TBL with byte indices
 * 4 n .. 4 n + 3 reads entry n of each lane; the byte indices come from the
 * nibble by one multiply-add.
 */
#include <string.h>

#include "../internal.h"

#if defined(RBE_HAVE_NEON) && defined(__aarch64__)
#include <arm_neon.h>

#define ROWS_PER_STEP 4
#define CHUNK_BYTES 16
#define CHUNK_TABLES (2 * CHUNK_BYTES)
/* Groups span at least 4 tables, so at most this many end inside a chunk. */
#define CHUNK_GROUP_ENDS (CHUNK_TABLES / 4)

/* State of one batch entry in a block of rows. */
typedef struct entry_state {
    const float *tables;                       /* the entry's first table */
    float32x4_t chains[RBE_LUT_MAX_PLANES][4]; /* open group's chains, per plane */
    float32x4_t bits_sums[CHUNK_GROUP_ENDS];   /* groups that end in this chunk */
    float32x4_t total;
} entry_state;

typedef struct block_state {
    const rbe_gemm_args *args;
    size_t first_row;
    size_t rows;                               /* valid rows, 1..4 */
    size_t group_tables;
    size_t tables_per_row;
    const uint8_t *row_start[RBE_LUT_MAX_PLANES][ROWS_PER_STEP];
    size_t window_group;                       /* first group in the windows below */
    float32x4_t scale_window[4];               /* [j] lane r: scale of row r, group + j */
    float32x4_t zero_window[4];
    entry_state entries[RBE_LUT_BATCH_SPAN];
} block_state;

/* Puts dword j of row i into lane i of out[j]. */
static void transpose4(const uint32x4_t *row, uint32x4_t *out)
{
    uint32x4x2_t low_pair = vtrnq_u32(row[0], row[1]);
    uint32x4x2_t high_pair = vtrnq_u32(row[2], row[3]);

    out[0] = vcombine_u32(vget_low_u32(low_pair.val[0]), vget_low_u32(high_pair.val[0]));
    out[1] = vcombine_u32(vget_low_u32(low_pair.val[1]), vget_low_u32(high_pair.val[1]));
    out[2] = vcombine_u32(vget_high_u32(low_pair.val[0]), vget_high_u32(high_pair.val[0]));
    out[3] = vcombine_u32(vget_high_u32(low_pair.val[1]), vget_high_u32(high_pair.val[1]));
}

/* Loads the chunk at `offset` of plane p and puts dword j of row i into lane i of idx[j]. */
static void load_chunk(const block_state *block, unsigned p, size_t offset, uint32x4_t *idx)
{
    size_t valid = block->args->layout->row_stride - offset;
    uint32x4_t rows[ROWS_PER_STEP];

    for (int i = 0; i < ROWS_PER_STEP; i++) {
        const uint8_t *at = block->row_start[p][i] + offset;
        /* row_stride is a multiple of 8 bytes, so a short chunk has 8. */
        uint8x16_t bytes = valid >= CHUNK_BYTES ? vld1q_u8(at)
                                                : vcombine_u8(vld1_u8(at), vdup_n_u8(0));
        rows[i] = vreinterpretq_u32_u8(bytes);
    }

    transpose4(rows, idx);
}

/* Entry (nibbles & 15) of a 16-float table, per lane. */
static inline float32x4_t lookup(uint32x4_t nibbles, const float *table)
{
    uint8x16x4_t bytes = vld1q_u8_x4((const uint8_t *)table);
    uint32x4_t entry = vandq_u32(nibbles, vdupq_n_u32(15));
    uint32x4_t byte_index = vmlaq_u32(vdupq_n_u32(0x03020100u), entry,
                                      vdupq_n_u32(0x04040404u));
    return vreinterpretq_f32_u8(vqtbl4q_u8(bytes, vreinterpretq_u8_u32(byte_index)));
}

/* Written out so that the four chains stay in registers. */
#define LOOKUP_ADD(c, j)                                       \
    c = vaddq_f32(c, lookup(nibbles, table + (j) * RBE_LUT_ENTRIES)); \
    nibbles = vshrq_n_u32(nibbles, 4);

/*
 * Adds plane p's tables first_table .. first_table + count - 1 (one chunk)
 * to one entry's chains; next_end is the table where the open group ends.
 * Whole dwords inside a group take the unrolled loop. A group that ends
 * adds bits_sum = bits_sum + plane sum * 2^(B-1-p). Returns how many groups
 * ended.
 */
static size_t plane_chunk(entry_state *entry, unsigned p, float32x4_t weight, const uint32x4_t *idx,
                          size_t first_table, size_t count, size_t next_end,
                          size_t group_tables)
{
    const float *table = entry->tables + first_table * RBE_LUT_ENTRIES;
    float32x4_t c0 = entry->chains[p][0], c1 = entry->chains[p][1];
    float32x4_t c2 = entry->chains[p][2], c3 = entry->chains[p][3];
    size_t ended = 0;
    size_t t = 0;

    while (t < count) {
        size_t group_stop = next_end - first_table;
        size_t stop = group_stop < count ? group_stop : count;

        while (t < stop) {
            if (t % 8 == 0 && t + 8 <= stop) {
                size_t whole_end = t + (stop - t) / 8 * 8;
                for (; t < whole_end; t += 8) {
                    uint32x4_t nibbles = idx[t / 8];
                    LOOKUP_ADD(c0, 0) LOOKUP_ADD(c1, 1) LOOKUP_ADD(c2, 2) LOOKUP_ADD(c3, 3)
                    LOOKUP_ADD(c0, 4) LOOKUP_ADD(c1, 5) LOOKUP_ADD(c2, 6) LOOKUP_ADD(c3, 7)
                    table += 8 * RBE_LUT_ENTRIES;
                }
                continue;
            }
            float32x4_t found = lookup(vshlq_u32(idx[t / 8], vdupq_n_s32(-(int32_t)(4 * (t % 8)))), table);
            switch (t % 4) {
            case 0: c0 = vaddq_f32(c0, found); break;
            case 1: c1 = vaddq_f32(c1, found); break;
            case 2: c2 = vaddq_f32(c2, found); break;
            default: c3 = vaddq_f32(c3, found); break;
            }
            table += RBE_LUT_ENTRIES;
            t++;
        }
        if (t == group_stop) {
            float32x4_t plane_sum = vaddq_f32(vaddq_f32(c0, c1), vaddq_f32(c2, c3));
            entry->bits_sums[ended] = vaddq_f32(entry->bits_sums[ended], vmulq_f32(plane_sum, weight));
            ended++;
            c0 = c1 = c2 = c3 = vdupq_n_f32(0.0f);
            next_end += group_tables;
        }
    }

    entry->chains[p][0] = c0;
    entry->chains[p][1] = c1;
    entry->chains[p][2] = c2;
    entry->chains[p][3] = c3;
    return ended;
}

/*
 * Loads the scales and zeros of groups g .. g + 3 of the block's rows,
 * transposed so that vector j carries group g + j of all 4 rows.
 */
static void fill_param_windows(block_state *block, size_t g)
{
    const rbe_gemm_args *args = block->args;
    size_t groups = args->layout->groups;
    size_t count = groups - g < 4 ? groups - g : 4;
    uint32x4_t scale_rows[4], zero_rows[4], scale_columns[4], zero_columns[4];

    for (size_t i = 0; i < ROWS_PER_STEP; i++) {
        size_t row = block->first_row + (i < block->rows ? i : block->rows - 1);
        float scale[4] = {0.0f}, zero[4] = {0.0f};
        memcpy(scale, args->scale + row * groups + g, count * sizeof(float));
        memcpy(zero, args->zero + row * groups + g, count * sizeof(float));
        scale_rows[i] = vreinterpretq_u32_f32(vld1q_f32(scale));
        zero_rows[i] = vreinterpretq_u32_f32(vld1q_f32(zero));
    }

    transpose4(scale_rows, scale_columns);
    transpose4(zero_rows, zero_columns);
    for (int j = 0; j < 4; j++) {
        block->scale_window[j] = vreinterpretq_f32_u32(scale_columns[j]);
        block->zero_window[j] = vreinterpretq_f32_u32(zero_columns[j]);
    }
    block->window_group = g;
}

/* Adds the groups first_group .. first_group + ended - 1 to the entry's totals. */
static void add_groups(block_state *block, entry_state *entry, size_t m,
                       size_t first_group, size_t ended, float center_offset)
{
    const rbe_gemm_args *args = block->args;
    size_t groups = args->layout->groups;

    for (size_t i = 0; i < ended; i++) {
        size_t g = first_group + i;
        if (g < block->window_group || g >= block->window_group + 4) {
            fill_param_windows(block, g);
        }
        float32x4_t scale = block->scale_window[g - block->window_group];
        float32x4_t zero = block->zero_window[g - block->window_group];

        float32x4_t x_sum = vdupq_n_f32(args->lut_x_sums[m * groups + g]);
        float32x4_t offset = vmulq_f32(vsubq_f32(vdupq_n_f32(center_offset), zero), x_sum);
        float32x4_t group_sum = vaddq_f32(entry->bits_sums[i], offset);
        float32x4_t scaled = vmulq_f32(scale, group_sum);
        entry->total = vaddq_f32(entry->total, scaled);
        entry->bits_sums[i] = vdupq_n_f32(0.0f);
    }
}

/* Computes batch entries first_m .. first_m + span - 1 for one block of rows. */
static void block_span(block_state *block, size_t first_m, size_t span)
{
    const rbe_gemm_args *args = block->args;
    const rbe_layout *layout = args->layout;
    float center_offset = rbe_center_offset(layout->bits, args->planes_used);
    size_t next_end = block->group_tables;
    size_t first_group = 0;

    for (size_t e = 0; e < span; e++) {
        entry_state *entry = &block->entries[e];
        memset(entry, 0, sizeof(*entry));
        entry->tables = args->lut + (first_m + e) * block->tables_per_row * RBE_LUT_ENTRIES;
    }

    for (size_t first_table = 0; first_table < block->tables_per_row;
         first_table += CHUNK_TABLES) {
        size_t left = block->tables_per_row - first_table;
        size_t count = left < CHUNK_TABLES ? left : CHUNK_TABLES;
        size_t ended = 0;

        for (unsigned p = 0; p < args->planes_used; p++) {
            uint32x4_t idx[4];
            float32x4_t weight = vdupq_n_f32((float)(1u << (layout->bits - 1 - p)));
            load_chunk(block, p, first_table / 2, idx);
            for (size_t e = 0; e < span; e++) {
                ended = plane_chunk(&block->entries[e], p, weight, idx, first_table, count,
                                    next_end, block->group_tables);
            }
        }
        for (size_t e = 0; e < span; e++) {
            add_groups(block, &block->entries[e], first_m + e, first_group, ended, center_offset);
        }
        first_group += ended;
        next_end += ended * block->group_tables;
    }

    for (size_t e = 0; e < span; e++) {
        float totals[ROWS_PER_STEP];
        vst1q_f32(totals, block->entries[e].total);
        for (size_t r = 0; r < block->rows; r++) {
            args->y[(first_m + e) * layout->rows + block->first_row + r] = totals[r];
        }
    }
}

void rbe_gemm_lut_rows_neon(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    const rbe_layout *layout = args->layout;
    block_state block;

    block.args = args;
    block.tables_per_row = rbe_gemm_lut_tables_per_row(layout);
    block.group_tables = rbe_gemm_lut_group_tables(layout);

    for (size_t row = row_begin; row < row_end; row += ROWS_PER_STEP) {
        block.first_row = row;
        block.rows = row_end - row < ROWS_PER_STEP ? row_end - row : ROWS_PER_STEP;
        block.window_group = SIZE_MAX - 16;
        for (unsigned p = 0; p < args->planes_used; p++) {
            rbe_gemm_lut_row_starts(args, p, row, block.rows, ROWS_PER_STEP, block.row_start[p]);
        }
        for (size_t m = 0; m < args->batch; m += RBE_LUT_BATCH_SPAN) {
            size_t left = args->batch - m;
            block_span(&block, m, left < RBE_LUT_BATCH_SPAN ? left : RBE_LUT_BATCH_SPAN);
        }
    }
}
#else
typedef int rbe_gemm_lut_neon_unused;
#endif
