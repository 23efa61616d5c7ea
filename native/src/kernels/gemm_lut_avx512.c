/*
 * AVX-512 lookup path of the product (see rbe_gemm_choose_path and the
 * order in gemm_lut_scalar.c). Lane i of every vector is row i of a block
 * of 16. For a run of 512 columns it loads 64 plane bytes of each row and
 * transposes them as 16 x 16 dwords, so vector d carries columns
 * 32 d .. 32 d + 31 of all 16 rows. vpermps then reads the low 4 bits of
 * each lane as an index into one 16-float table. One instruction thus gives
 * 16 rows' partial sums for 4 columns, and a shift by 4 brings the next 4
 * columns down. On Zen 4 this costs about 1.2 ms per plane at
 * 8192 x 8192 and M = 1, against about 4 ms for the decode path at any P.
 */
#include <string.h>

#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>

/* Keeps the transposed chunk in registers inside the lookup loops. */
#define RBE_ALWAYS_INLINE inline __attribute__((always_inline))

#define ROWS_PER_STEP 16
#define CHUNK_BYTES 64
#define CHUNK_TABLES (2 * CHUNK_BYTES)
/* Groups span at least 4 tables, so at most this many end inside a chunk. */
#define CHUNK_GROUP_ENDS (CHUNK_TABLES / 4)

/* State of one batch entry in a block of rows. */
typedef struct entry_state {
    const float *tables;                       /* the entry's first table */
    __m512 chains[RBE_LUT_MAX_PLANES][4];      /* open group's chains, per plane */
    __m512 bits_sums[CHUNK_GROUP_ENDS];        /* groups that end in this chunk */
    __m512 total;
} entry_state;

typedef struct block_state {
    const rbe_gemm_args *args;
    size_t first_row;
    size_t rows;                               /* valid rows, 1..16 */
    size_t group_tables;
    size_t tables_per_row;
    const uint8_t *row_start[RBE_LUT_MAX_PLANES][ROWS_PER_STEP];
    size_t window_group;                       /* first group in the windows below */
    __m512 scale_window[16];                   /* [j] lane r: scale of row r, group + j */
    __m512 zero_window[16];
    entry_state entries[RBE_LUT_BATCH_SPAN];
} block_state;

/* Puts dword j of row i into lane i of out[j]. */
RBE_TARGET_AVX512
static RBE_ALWAYS_INLINE void transpose16(const __m512i *row, __m512i *out)
{
    __m512i pairs[16], quads[16];

    for (int i = 0; i < 8; i++) {
        pairs[2 * i] = _mm512_unpacklo_epi32(row[2 * i], row[2 * i + 1]);
        pairs[2 * i + 1] = _mm512_unpackhi_epi32(row[2 * i], row[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) {
        const __m512i *p = pairs + 4 * g;
        quads[4 * g] = _mm512_unpacklo_epi64(p[0], p[2]);
        quads[4 * g + 1] = _mm512_unpackhi_epi64(p[0], p[2]);
        quads[4 * g + 2] = _mm512_unpacklo_epi64(p[1], p[3]);
        quads[4 * g + 3] = _mm512_unpackhi_epi64(p[1], p[3]);
    }
    /* quads[4 g + c] lane L: dword 4 L + c of rows 4 g .. 4 g + 3. */
    for (int c = 0; c < 4; c++) {
        __m512i low01 = _mm512_shuffle_i32x4(quads[c], quads[4 + c], 0x88);
        __m512i high01 = _mm512_shuffle_i32x4(quads[c], quads[4 + c], 0xDD);
        __m512i low23 = _mm512_shuffle_i32x4(quads[8 + c], quads[12 + c], 0x88);
        __m512i high23 = _mm512_shuffle_i32x4(quads[8 + c], quads[12 + c], 0xDD);
        out[c] = _mm512_shuffle_i32x4(low01, low23, 0x88);
        out[8 + c] = _mm512_shuffle_i32x4(low01, low23, 0xDD);
        out[4 + c] = _mm512_shuffle_i32x4(high01, high23, 0x88);
        out[12 + c] = _mm512_shuffle_i32x4(high01, high23, 0xDD);
    }
}

/*
 * Loads the chunk at `offset` of plane p for the 16 rows and prefetches the
 * same bytes of the next block, which the hardware prefetchers miss: 16
 * rows times P planes are too many streams.
 */
RBE_TARGET_AVX512
static RBE_ALWAYS_INLINE void load_chunk(const block_state *block, unsigned p, size_t offset,
                                          __m512i *idx)
{
    const rbe_layout *layout = block->args->layout;
    size_t valid = layout->row_stride - offset;
    int prefetch = block->first_row + 2 * ROWS_PER_STEP <= layout->rows;
    __m512i rows[ROWS_PER_STEP];

    for (int i = 0; i < ROWS_PER_STEP; i++) {
        const uint8_t *at = block->row_start[p][i] + offset;
        if (valid >= CHUNK_BYTES) {
            rows[i] = _mm512_loadu_si512(at);
        } else {
            /* row_stride is a multiple of 8 bytes, so whole dwords end the row. */
            __mmask16 dwords = (__mmask16)((1u << (valid / 4)) - 1u);
            rows[i] = _mm512_maskz_loadu_epi32(dwords, at);
        }
        if (prefetch) {
            _mm_prefetch((const char *)(at + ROWS_PER_STEP * layout->row_stride), _MM_HINT_T1);
        }
    }
    transpose16(rows, idx);
}

/* Written out so that the four chains stay in registers. */
#define LOOKUP_ADD(c, j)                                                                    \
    c = _mm512_add_ps(c, _mm512_permutexvar_ps(nibbles,                                     \
                                               _mm512_loadu_ps(table + (j) * RBE_LUT_ENTRIES))); \
    nibbles = _mm512_srli_epi32(nibbles, 4);

/*
 * Adds plane p's tables first_table .. first_table + count - 1 (one chunk)
 * to one entry's chains; next_end is the table where the open group ends.
 * Whole dwords inside a group take the unrolled loop. A group that ends
 * adds bits_sum = bits_sum + plane sum * 2^(B-1-p). Returns how many groups
 * ended.
 */
RBE_TARGET_AVX512
static size_t plane_chunk(entry_state *entry, unsigned p, __m512 weight, const __m512i *idx,
                          size_t first_table, size_t count, size_t next_end,
                          size_t group_tables)
{
    const float *table = entry->tables + first_table * RBE_LUT_ENTRIES;
    __m512 c0 = entry->chains[p][0], c1 = entry->chains[p][1];
    __m512 c2 = entry->chains[p][2], c3 = entry->chains[p][3];
    size_t ended = 0;
    size_t t = 0;

    while (t < count) {
        size_t group_stop = next_end - first_table;
        size_t stop = group_stop < count ? group_stop : count;

        while (t < stop) {
            if (t % 8 == 0 && t + 8 <= stop) {
                size_t whole_end = t + (stop - t) / 8 * 8;
                for (; t < whole_end; t += 8) {
                    __m512i nibbles = idx[t / 8];
                    LOOKUP_ADD(c0, 0) LOOKUP_ADD(c1, 1) LOOKUP_ADD(c2, 2) LOOKUP_ADD(c3, 3)
                    LOOKUP_ADD(c0, 4) LOOKUP_ADD(c1, 5) LOOKUP_ADD(c2, 6) LOOKUP_ADD(c3, 7)
                    table += 8 * RBE_LUT_ENTRIES;
                }
                continue;
            }
            __m512i nibbles = _mm512_srlv_epi32(idx[t / 8],
                                                _mm512_set1_epi32((int)(4 * (t % 8))));
            __m512 found = _mm512_permutexvar_ps(nibbles, _mm512_loadu_ps(table));
            switch (t % 4) {
            case 0: c0 = _mm512_add_ps(c0, found); break;
            case 1: c1 = _mm512_add_ps(c1, found); break;
            case 2: c2 = _mm512_add_ps(c2, found); break;
            default: c3 = _mm512_add_ps(c3, found); break;
            }
            table += RBE_LUT_ENTRIES;
            t++;
        }
        if (t == group_stop) {
            __m512 plane_sum = _mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3));
            entry->bits_sums[ended] = _mm512_add_ps(entry->bits_sums[ended],
                                                    _mm512_mul_ps(plane_sum, weight));
            ended++;
            c0 = c1 = c2 = c3 = _mm512_setzero_ps();
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
 * Loads the scales and zeros of groups g .. g + 15 of the block's rows,
 * transposed so that vector j carries group g + j of all 16 rows. Gathers
 * of one group at a time took a third of the kernel's time with groups of
 * 64 columns.
 */
RBE_TARGET_AVX512
static void fill_param_windows(block_state *block, size_t g)
{
    const rbe_gemm_args *args = block->args;
    size_t groups = args->layout->groups;
    size_t left = groups - g;
    __mmask16 valid = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    __m512i scale_rows[16], zero_rows[16];

    for (size_t i = 0; i < ROWS_PER_STEP; i++) {
        size_t row = block->first_row + (i < block->rows ? i : block->rows - 1);
        size_t param = row * groups + g;
        scale_rows[i] = _mm512_castps_si512(_mm512_maskz_loadu_ps(valid, args->scale + param));
        zero_rows[i] = _mm512_castps_si512(_mm512_maskz_loadu_ps(valid, args->zero + param));
    }

    __m512i scale_columns[16], zero_columns[16];
    transpose16(scale_rows, scale_columns);
    transpose16(zero_rows, zero_columns);
    for (int j = 0; j < 16; j++) {
        block->scale_window[j] = _mm512_castsi512_ps(scale_columns[j]);
        block->zero_window[j] = _mm512_castsi512_ps(zero_columns[j]);
    }
    block->window_group = g;
}

/* Adds the groups first_group .. first_group + ended - 1 to the entry's totals. */
RBE_TARGET_AVX512
static void add_groups(block_state *block, entry_state *entry, size_t m,
                       size_t first_group, size_t ended, float center_offset)
{
    const rbe_gemm_args *args = block->args;
    size_t groups = args->layout->groups;

    for (size_t i = 0; i < ended; i++) {
        size_t g = first_group + i;
        if (g < block->window_group || g >= block->window_group + 16) {
            fill_param_windows(block, g);
        }
        __m512 scale = block->scale_window[g - block->window_group];
        __m512 zero = block->zero_window[g - block->window_group];

        __m512 x_sum = _mm512_set1_ps(args->lut_x_sums[m * groups + g]);
        __m512 offset = _mm512_mul_ps(_mm512_sub_ps(_mm512_set1_ps(center_offset), zero), x_sum);
        __m512 group_sum = _mm512_add_ps(entry->bits_sums[i], offset);
        __m512 scaled = _mm512_mul_ps(scale, group_sum);
        entry->total = _mm512_add_ps(entry->total, scaled);
        entry->bits_sums[i] = _mm512_setzero_ps();
    }
}

/* Computes batch entries first_m .. first_m + span - 1 for one block of rows. */
RBE_TARGET_AVX512
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
            __m512i idx[16];
            __m512 weight = _mm512_set1_ps((float)(1u << (layout->bits - 1 - p)));
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
        _mm512_storeu_ps(totals, block->entries[e].total);
        for (size_t r = 0; r < block->rows; r++) {
            args->y[(first_m + e) * layout->rows + block->first_row + r] = totals[r];
        }
    }
}

/*
 * The common product of one row of x with one group per row, in the order
 * of block_span: each plane runs over the whole row with its four chains
 * in registers, then the group closes as in add_groups. At 8192 x 8192 it
 * took 2.2 ms at P = 2 against 2.4 ms for block_span.
 */
RBE_TARGET_AVX512
static void single_entry_block(block_state *block)
{
    const rbe_gemm_args *args = block->args;
    const rbe_layout *layout = args->layout;
    size_t per_row = block->tables_per_row;
    __m512 bits_sum = _mm512_setzero_ps();

    for (unsigned p = 0; p < args->planes_used; p++) {
        const float *table = args->lut;
        __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;

        for (size_t first_table = 0; first_table < per_row; first_table += CHUNK_TABLES) {
            size_t count = per_row - first_table < CHUNK_TABLES ? per_row - first_table
                                                                : CHUNK_TABLES;
            __m512i idx[16];
            load_chunk(block, p, first_table / 2, idx);
            for (size_t d = 0; d < count / 8; d++) {
                __m512i nibbles = idx[d];
                LOOKUP_ADD(c0, 0) LOOKUP_ADD(c1, 1) LOOKUP_ADD(c2, 2) LOOKUP_ADD(c3, 3)
                LOOKUP_ADD(c0, 4) LOOKUP_ADD(c1, 5) LOOKUP_ADD(c2, 6) LOOKUP_ADD(c3, 7)
                table += 8 * RBE_LUT_ENTRIES;
            }
            for (size_t t = count / 8 * 8; t < count; t++) {
                __m512i nibbles = _mm512_srlv_epi32(idx[t / 8],
                                                    _mm512_set1_epi32((int)(4 * (t % 8))));
                __m512 found = _mm512_permutexvar_ps(nibbles, _mm512_loadu_ps(table));
                switch (t % 4) {
                case 0: c0 = _mm512_add_ps(c0, found); break;
                case 1: c1 = _mm512_add_ps(c1, found); break;
                case 2: c2 = _mm512_add_ps(c2, found); break;
                default: c3 = _mm512_add_ps(c3, found); break;
                }
                table += RBE_LUT_ENTRIES;
            }
        }

        __m512 weight = _mm512_set1_ps((float)(1u << (layout->bits - 1 - p)));
        __m512 plane_sum = _mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3));
        bits_sum = _mm512_add_ps(bits_sum, _mm512_mul_ps(plane_sum, weight));
    }

    fill_param_windows(block, 0);
    float center_offset = rbe_center_offset(layout->bits, args->planes_used);
    __m512 x_sum = _mm512_set1_ps(args->lut_x_sums[0]);
    __m512 offset = _mm512_mul_ps(_mm512_sub_ps(_mm512_set1_ps(center_offset),
                                                block->zero_window[0]), x_sum);
    __m512 scaled = _mm512_mul_ps(block->scale_window[0], _mm512_add_ps(bits_sum, offset));
    float totals[ROWS_PER_STEP];
    _mm512_storeu_ps(totals, _mm512_add_ps(_mm512_setzero_ps(), scaled));
    for (size_t r = 0; r < block->rows; r++) {
        args->y[block->first_row + r] = totals[r];
    }
}

RBE_TARGET_AVX512
void rbe_gemm_lut_rows_avx512(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
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
        if (args->batch == 1 && layout->groups == 1) {
            single_entry_block(&block);
            continue;
        }
        for (size_t m = 0; m < args->batch; m += RBE_LUT_BATCH_SPAN) {
            size_t left = args->batch - m;
            block_span(&block, m, left < RBE_LUT_BATCH_SPAN ? left : RBE_LUT_BATCH_SPAN);
        }
    }
}
#else
typedef int rbe_gemm_lut_avx512_unused;
#endif
