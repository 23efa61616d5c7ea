/*
 * AVX2 lookup path of the product (see rbe_gemm_choose_path and the order
 * in gemm_lut_scalar.c), laid out as gemm_lut_avx512.c with 8 rows per
 * block: lane i of every vector is row i. A run of 256 columns loads 32
 * plane bytes of each row and transposes them as 8 x 8 dwords. vpermps
 * reads only 8 entries, so each lookup reads both halves of the 16-float
 * table and bit 3 of the nibble picks one with a blend.
 */
#include <string.h>

#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>

#define ROWS_PER_STEP 8
#define CHUNK_BYTES 32
#define CHUNK_TABLES (2 * CHUNK_BYTES)
/* Groups span at least 4 tables, so at most this many end inside a chunk. */
#define CHUNK_GROUP_ENDS (CHUNK_TABLES / 4)
#define PREFETCH_ROWS 16

/* State of one batch entry in a block of rows. */
typedef struct entry_state {
    const float *tables;                       /* the entry's first table */
    __m256 chains[RBE_LUT_MAX_PLANES][4];      /* open group's chains, per plane */
    __m256 bits_sums[CHUNK_GROUP_ENDS];        /* groups that end in this chunk */
    __m256 total;
} entry_state;

typedef struct block_state {
    const rbe_gemm_args *args;
    size_t first_row;
    size_t rows;                               /* valid rows, 1..8 */
    size_t group_tables;
    size_t tables_per_row;
    const uint8_t *row_start[RBE_LUT_MAX_PLANES][ROWS_PER_STEP];
    size_t window_group;                       /* first group in the windows below */
    __m256 scale_window[8];                    /* [j] lane r: scale of row r, group + j */
    __m256 zero_window[8];
    entry_state entries[RBE_LUT_BATCH_SPAN];
} block_state;

/* Puts dword j of row i into lane i of out[j]. */
RBE_TARGET_AVX2
static void transpose8(const __m256i *row, __m256i *out)
{
    __m256i pairs[8], quads[8];

    for (int i = 0; i < 4; i++) {
        pairs[2 * i] = _mm256_unpacklo_epi32(row[2 * i], row[2 * i + 1]);
        pairs[2 * i + 1] = _mm256_unpackhi_epi32(row[2 * i], row[2 * i + 1]);
    }
    for (int g = 0; g < 2; g++) {
        const __m256i *pair = pairs + 4 * g;
        quads[4 * g] = _mm256_unpacklo_epi64(pair[0], pair[2]);
        quads[4 * g + 1] = _mm256_unpackhi_epi64(pair[0], pair[2]);
        quads[4 * g + 2] = _mm256_unpacklo_epi64(pair[1], pair[3]);
        quads[4 * g + 3] = _mm256_unpackhi_epi64(pair[1], pair[3]);
    }
    /* quads[4 g + c] lane L: dword 4 L + c of rows 4 g .. 4 g + 3. */
    for (int c = 0; c < 4; c++) {
        out[c] = _mm256_permute2x128_si256(quads[c], quads[4 + c], 0x20);
        out[4 + c] = _mm256_permute2x128_si256(quads[c], quads[4 + c], 0x31);
    }
}

/*
 * Loads the chunk at `offset` of plane p and puts dword j of row i into
 * lane i of idx[j]. It prefetches the same bytes 16 rows ahead, which the
 * hardware prefetchers miss: rows times P planes are too many streams.
 */
RBE_TARGET_AVX2
static void load_chunk(const block_state *block, unsigned p, size_t offset, __m256i *idx)
{
    const rbe_layout *layout = block->args->layout;
    size_t valid = layout->row_stride - offset;
    int prefetch = block->first_row + ROWS_PER_STEP + PREFETCH_ROWS <= layout->rows;
    __m256i rows[ROWS_PER_STEP];
    /* row_stride is a multiple of 8 bytes, so whole dwords end the row. */
    __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    size_t tail_dwords = (valid < CHUNK_BYTES ? valid : CHUNK_BYTES) / 4;
    __m256i tail_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)tail_dwords), lane);

    for (int i = 0; i < ROWS_PER_STEP; i++) {
        const uint8_t *at = block->row_start[p][i] + offset;
        if (prefetch) {
            _mm_prefetch((const char *)(at + PREFETCH_ROWS * layout->row_stride), _MM_HINT_T1);
        }
        if (valid >= CHUNK_BYTES) {
            rows[i] = _mm256_loadu_si256((const __m256i *)at);
        } else {
            rows[i] = _mm256_maskload_epi32((const int *)at, tail_mask);
        }
    }

    transpose8(rows, idx);
}

/* Entry (nibbles & 15) of a 16-float table, per lane. */
RBE_TARGET_AVX2
static inline __m256 lookup(__m256i nibbles, const float *table)
{
    __m256 low = _mm256_permutevar8x32_ps(_mm256_loadu_ps(table), nibbles);
    __m256 high = _mm256_permutevar8x32_ps(_mm256_loadu_ps(table + 8), nibbles);
    __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(nibbles, 28));
    return _mm256_blendv_ps(low, high, bit3);
}

/* Written out so that the four chains stay in registers. */
#define LOOKUP_ADD(c, j)                                       \
    c = _mm256_add_ps(c, lookup(nibbles, table + (j) * RBE_LUT_ENTRIES)); \
    nibbles = _mm256_srli_epi32(nibbles, 4);

/*
 * Adds plane p's tables first_table .. first_table + count - 1 (one chunk)
 * to one entry's chains; next_end is the table where the open group ends.
 * Whole dwords inside a group take the unrolled loop. A group that ends
 * adds bits_sum = bits_sum + plane sum * 2^(B-1-p). Returns how many groups
 * ended.
 */
RBE_TARGET_AVX2
static size_t plane_chunk(entry_state *entry, unsigned p, __m256 weight, const __m256i *idx,
                          size_t first_table, size_t count, size_t next_end,
                          size_t group_tables)
{
    const float *table = entry->tables + first_table * RBE_LUT_ENTRIES;
    __m256 c0 = entry->chains[p][0], c1 = entry->chains[p][1];
    __m256 c2 = entry->chains[p][2], c3 = entry->chains[p][3];
    size_t ended = 0;
    size_t t = 0;

    while (t < count) {
        size_t group_stop = next_end - first_table;
        size_t stop = group_stop < count ? group_stop : count;

        while (t < stop) {
            if (t % 8 == 0 && t + 8 <= stop) {
                size_t whole_end = t + (stop - t) / 8 * 8;
                for (; t < whole_end; t += 8) {
                    __m256i nibbles = idx[t / 8];
                    LOOKUP_ADD(c0, 0) LOOKUP_ADD(c1, 1) LOOKUP_ADD(c2, 2) LOOKUP_ADD(c3, 3)
                    LOOKUP_ADD(c0, 4) LOOKUP_ADD(c1, 5) LOOKUP_ADD(c2, 6) LOOKUP_ADD(c3, 7)
                    table += 8 * RBE_LUT_ENTRIES;
                }
                continue;
            }
            __m256 found = lookup(_mm256_srlv_epi32(idx[t / 8], _mm256_set1_epi32((int)(4 * (t % 8)))), table);
            switch (t % 4) {
            case 0: c0 = _mm256_add_ps(c0, found); break;
            case 1: c1 = _mm256_add_ps(c1, found); break;
            case 2: c2 = _mm256_add_ps(c2, found); break;
            default: c3 = _mm256_add_ps(c3, found); break;
            }
            table += RBE_LUT_ENTRIES;
            t++;
        }
        if (t == group_stop) {
            __m256 plane_sum = _mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3));
            entry->bits_sums[ended] = _mm256_add_ps(entry->bits_sums[ended], _mm256_mul_ps(plane_sum, weight));
            ended++;
            c0 = c1 = c2 = c3 = _mm256_setzero_ps();
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
 * Loads the scales and zeros of groups g .. g + 7 of the block's rows,
 * transposed so that vector j carries group g + j of all 8 rows.
 */
RBE_TARGET_AVX2
static void fill_param_windows(block_state *block, size_t g)
{
    const rbe_gemm_args *args = block->args;
    size_t groups = args->layout->groups;
    size_t count = groups - g < 8 ? groups - g : 8;
    __m256i scale_rows[8], zero_rows[8], scale_columns[8], zero_columns[8];

    for (size_t i = 0; i < ROWS_PER_STEP; i++) {
        size_t row = block->first_row + (i < block->rows ? i : block->rows - 1);
        float scale[8] = {0.0f}, zero[8] = {0.0f};
        memcpy(scale, args->scale + row * groups + g, count * sizeof(float));
        memcpy(zero, args->zero + row * groups + g, count * sizeof(float));
        scale_rows[i] = _mm256_castps_si256(_mm256_loadu_ps(scale));
        zero_rows[i] = _mm256_castps_si256(_mm256_loadu_ps(zero));
    }

    transpose8(scale_rows, scale_columns);
    transpose8(zero_rows, zero_columns);
    for (int j = 0; j < 8; j++) {
        block->scale_window[j] = _mm256_castsi256_ps(scale_columns[j]);
        block->zero_window[j] = _mm256_castsi256_ps(zero_columns[j]);
    }
    block->window_group = g;
}

/* Adds the groups first_group .. first_group + ended - 1 to the entry's totals. */
RBE_TARGET_AVX2
static void add_groups(block_state *block, entry_state *entry, size_t m,
                       size_t first_group, size_t ended, float center_offset)
{
    const rbe_gemm_args *args = block->args;
    size_t groups = args->layout->groups;

    for (size_t i = 0; i < ended; i++) {
        size_t g = first_group + i;
        if (g < block->window_group || g >= block->window_group + 8) {
            fill_param_windows(block, g);
        }
        __m256 scale = block->scale_window[g - block->window_group];
        __m256 zero = block->zero_window[g - block->window_group];

        __m256 x_sum = _mm256_set1_ps(args->lut_x_sums[m * groups + g]);
        __m256 offset = _mm256_mul_ps(_mm256_sub_ps(_mm256_set1_ps(center_offset), zero), x_sum);
        __m256 group_sum = _mm256_add_ps(entry->bits_sums[i], offset);
        __m256 scaled = _mm256_mul_ps(scale, group_sum);
        entry->total = _mm256_add_ps(entry->total, scaled);
        entry->bits_sums[i] = _mm256_setzero_ps();
    }
}

/* Computes batch entries first_m .. first_m + span - 1 for one block of rows. */
RBE_TARGET_AVX2
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
            __m256i idx[8];
            __m256 weight = _mm256_set1_ps((float)(1u << (layout->bits - 1 - p)));
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
        _mm256_storeu_ps(totals, block->entries[e].total);
        for (size_t r = 0; r < block->rows; r++) {
            args->y[(first_m + e) * layout->rows + block->first_row + r] = totals[r];
        }
    }
}

RBE_TARGET_AVX2
void rbe_gemm_lut_rows_avx2(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
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
typedef int rbe_gemm_lut_avx2_unused;
#endif
