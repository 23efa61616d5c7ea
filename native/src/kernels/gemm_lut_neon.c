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
    entry_state entries[RBE_LUT_BATCH_SPAN];
} block_state;

/* Loads the chunk at `offset` of plane p and puts dword j of row i into lane i of idx[j]. */
static void load_chunk(const block_state *block, unsigned p, size_t offset, uint32x4_t *idx)
{
    size_t valid = block->args->layout->row_stride - offset;
    uint32x4_t rows[ROWS_PER_STEP];

    for (int i = 0; i < ROWS_PER_STEP; i++) {
        const uint8_t *at = block->row_start[p][i] + offset;
        uint8_t tail[CHUNK_BYTES] = {0};
        if (valid < CHUNK_BYTES) {
            memcpy(tail, at, valid);
            at = tail;
        }
        rows[i] = vreinterpretq_u32_u8(vld1q_u8(at));
    }

    uint32x4x2_t low_pair = vtrnq_u32(rows[0], rows[1]);
    uint32x4x2_t high_pair = vtrnq_u32(rows[2], rows[3]);
    idx[0] = vcombine_u32(vget_low_u32(low_pair.val[0]), vget_low_u32(high_pair.val[0]));
    idx[1] = vcombine_u32(vget_low_u32(low_pair.val[1]), vget_low_u32(high_pair.val[1]));
    idx[2] = vcombine_u32(vget_high_u32(low_pair.val[0]), vget_high_u32(high_pair.val[0]));
    idx[3] = vcombine_u32(vget_high_u32(low_pair.val[1]), vget_high_u32(high_pair.val[1]));
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

/* Closes a group of plane p: bits_sum = bits_sum + plane sum * 2^(B-1-p). */
static inline void close_group(float32x4_t *chain, float32x4_t weight, float32x4_t *bits_sum)
{
    float32x4_t plane_sum = vaddq_f32(vaddq_f32(chain[0], chain[1]),
                                      vaddq_f32(chain[2], chain[3]));
    *bits_sum = vaddq_f32(*bits_sum, vmulq_f32(plane_sum, weight));
    for (int c = 0; c < 4; c++) {
        chain[c] = vdupq_n_f32(0.0f);
    }
}

/* Written out so that the four chains stay in registers. */
#define LOOKUP_ADD(c, j)                                               \
    c = vaddq_f32(c, lookup(nibbles, table + (j) * RBE_LUT_ENTRIES)); \
    nibbles = vshrq_n_u32(nibbles, 4);

/* Adds the tables of `dwords` whole dwords of every row, table j to chain j % 4. */
static void add_dwords(float32x4_t *chain, const uint32x4_t *idx, const float *table,
                       size_t dwords)
{
    float32x4_t c0 = chain[0], c1 = chain[1], c2 = chain[2], c3 = chain[3];

    for (size_t d = 0; d < dwords; d++) {
        uint32x4_t nibbles = idx[d];
        LOOKUP_ADD(c0, 0) LOOKUP_ADD(c1, 1) LOOKUP_ADD(c2, 2) LOOKUP_ADD(c3, 3)
        LOOKUP_ADD(c0, 4) LOOKUP_ADD(c1, 5) LOOKUP_ADD(c2, 6) LOOKUP_ADD(c3, 7)
        table += 8 * RBE_LUT_ENTRIES;
    }
    chain[0] = c0;
    chain[1] = c1;
    chain[2] = c2;
    chain[3] = c3;
}

/* Adds table t of the chunk (nibble t % 8 of dword t / 8) to chain t % 4. */
static void add_one_table(float32x4_t *chain, const uint32x4_t *idx, const float *table,
                          size_t t)
{
    int32x4_t shift = vdupq_n_s32(-(int32_t)(4 * (t % 8)));
    uint32x4_t nibbles = vshlq_u32(idx[t / 8], shift);
    chain[t % 4] = vaddq_f32(chain[t % 4], lookup(nibbles, table));
}

/*
 * Adds plane p's tables first_table .. first_table + count - 1 (one chunk)
 * to one entry's chains; next_end is the table where the open group ends.
 * Returns how many groups ended.
 */
static size_t plane_chunk(entry_state *entry, unsigned p, float32x4_t weight,
                          const uint32x4_t *idx, size_t first_table, size_t count,
                          size_t next_end, size_t group_tables)
{
    const float *tables = entry->tables + first_table * RBE_LUT_ENTRIES;
    float32x4_t *chain = entry->chains[p];
    size_t ended = 0;
    size_t t = 0;

    while (t < count) {
        size_t group_stop = next_end - first_table;
        size_t stop = group_stop < count ? group_stop : count;

        while (t < stop) {
            if (t % 8 == 0 && t + 8 <= stop) {
                size_t dwords = (stop - t) / 8;
                add_dwords(chain, idx + t / 8, tables + t * RBE_LUT_ENTRIES, dwords);
                t += 8 * dwords;
            } else {
                add_one_table(chain, idx, tables + t * RBE_LUT_ENTRIES, t);
                t++;
            }
        }
        if (t == group_stop) {
            close_group(chain, weight, &entry->bits_sums[ended++]);
            next_end += group_tables;
        }
    }
    return ended;
}

/* Adds the groups first_group .. first_group + ended - 1 to the entry's totals. */
static void add_groups(const block_state *block, entry_state *entry, size_t m,
                       size_t first_group, size_t ended, float center_offset)
{
    const rbe_gemm_args *args = block->args;
    size_t groups = args->layout->groups;

    for (size_t i = 0; i < ended; i++) {
        size_t g = first_group + i;
        float scale[ROWS_PER_STEP], zero[ROWS_PER_STEP];
        for (size_t r = 0; r < ROWS_PER_STEP; r++) {
            size_t row = block->first_row + (r < block->rows ? r : block->rows - 1);
            scale[r] = args->scale[row * groups + g];
            zero[r] = args->zero[row * groups + g];
        }

        float32x4_t x_sum = vdupq_n_f32(args->lut_x_sums[m * groups + g]);
        float32x4_t offset = vmulq_f32(vsubq_f32(vdupq_n_f32(center_offset), vld1q_f32(zero)),
                                       x_sum);
        float32x4_t group_sum = vaddq_f32(entry->bits_sums[i], offset);
        float32x4_t scaled = vmulq_f32(vld1q_f32(scale), group_sum);
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
    block.group_tables = layout->groups > 1 ? layout->group_size / RBE_LUT_COLS
                                            : block.tables_per_row;

    for (size_t row = row_begin; row < row_end; row += ROWS_PER_STEP) {
        block.first_row = row;
        block.rows = row_end - row < ROWS_PER_STEP ? row_end - row : ROWS_PER_STEP;
        for (unsigned p = 0; p < args->planes_used; p++) {
            for (size_t i = 0; i < ROWS_PER_STEP; i++) {
                size_t r = row + (i < block.rows ? i : block.rows - 1);
                block.row_start[p][i] = args->planes[p] + r * layout->row_stride;
            }
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
