/*
 * AVX-512 decode path of the product (see rbe_gemm_choose_path). For 16
 * rows and a run of 512 columns it loads 64 bytes of every used plane and
 * turns them into 512 codes per row with a byte transpose (unpack
 * instructions) and one GFNI 8x8 bit transpose per 8 columns. The codes go to a small
 * integer buffer. Each 16-column block of codes then becomes one vector of
 * floats that feeds one fused multiply-add per batch entry, so a batch
 * reuses every decoded block. Its cost hardly depends on P, so it serves
 * the larger P and batches (see rbe_gemm_choose_path).
 *
 * Order: the accumulator of (row, batch entry) is lane j of one vector,
 * fed in increasing k and reduced when its group ends, as the scalar
 * reference does, so any row, batch or column blocking gives its bits.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>

#define RBE_TARGET_DECODE \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vbmi,gfni")))
#define RBE_ALWAYS_INLINE inline __attribute__((always_inline))

#define CHUNK_COLS 512
#define CHUNK_BLOCKS (CHUNK_COLS / 16)
/* Rows decoded per chunk; they share the copy and the sums of x. */
#define ROWS_PER_STEP 16
/* Batch entries of one pass over the row block; x_copy contains their chunk. */
#define BATCH_SPAN 8
/*
 * Row blocks ahead whose planes are prefetched into L2. Without prefetch,
 * the rows times P planes of streams left the kernel waiting on memory
 * (2x slower at 8192 x 8192). Two blocks ahead streamed slower than one.
 */
#define PREFETCH_BLOCKS 1

/* What a slot without a plane reads. */
static const uint8_t kZeroBytes[64];

typedef struct chunk {
    size_t first_col;
    size_t cols;           /* valid columns, 1..CHUNK_COLS */
    size_t blocks;         /* 16-column blocks, the last one maybe partial */
    uint32_t group_ends;   /* bit t: a group ends with block t */
} chunk;

/*
 * State of one block of rows and one span of the batch. Codes sit in the
 * order that transpose_slots leaves them: block t (columns 16 t .. 16 t +
 * 15 of the chunk) starts at code 64 (t % 8) + 16 (t / 8).
 */
typedef struct span_state {
    size_t first_row;
    size_t rows;
    size_t first_m;
    size_t batch;
    int wide;                                  /* B > 8: codes are uint16 */
    __m512 acc[ROWS_PER_STEP][BATCH_SPAN];
    __m512 x_lanes[BATCH_SPAN];
    float x_sums[BATCH_SPAN][CHUNK_BLOCKS];    /* per group that ends in the chunk */
    const float *x_chunk;                      /* entry i at x_chunk + i * CHUNK_COLS */
    float x_copy[BATCH_SPAN][CHUNK_COLS];      /* zero past the last column */
    union {
        uint8_t narrow[ROWS_PER_STEP][CHUNK_COLS];
        uint16_t wide[ROWS_PER_STEP][CHUNK_COLS];
    } codes;
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

static size_t block_offset(size_t t)
{
    return 64 * (t % 8) + 16 * (t / 8);
}

/* The pairwise lane sum of rbe_gemm_reduce_lanes, with the same additions. */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE float reduce_lanes(__m512 v)
{
    __m256 level8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 level4 = _mm_add_ps(_mm256_castps256_ps128(level8), _mm256_extractf128_ps(level8, 1));
    __m128 level2 = _mm_add_ps(level4, _mm_movehl_ps(level4, level4));
    __m128 level1 = _mm_add_ss(level2, _mm_shuffle_ps(level2, level2, 1));
    return _mm_cvtss_f32(level1);
}

/*
 * Turns 8 registers of plane bytes (slot s of a byte group) into 8 registers
 * of codes. A byte transpose by unpacks gathers the 8 slots of each 8-column
 * group into one qword. Then gf2p8affineqb, with the data as its matrix,
 * moves bit c of slot s to bit 7 - s of byte c. The unpacks work inside 128-bit
 * lanes, so lane L of output register i contains block 8 L + i. Unused
 * slots are zero and go through the same steps: skipping them behind
 * branches made the kernel spill registers and run slower.
 */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE void transpose_slots(const __m512i *slot, __m512i *codes)
{
    const __m512i bit_of_byte = _mm512_set1_epi64(0x8040201008040201ll);

    for (int a = 0; a < 2; a++) {
        __m512i pair01 = a ? _mm512_unpackhi_epi8(slot[0], slot[1])
                           : _mm512_unpacklo_epi8(slot[0], slot[1]);
        __m512i pair23 = a ? _mm512_unpackhi_epi8(slot[2], slot[3])
                           : _mm512_unpacklo_epi8(slot[2], slot[3]);
        __m512i pair45 = a ? _mm512_unpackhi_epi8(slot[4], slot[5])
                           : _mm512_unpacklo_epi8(slot[4], slot[5]);
        __m512i pair67 = a ? _mm512_unpackhi_epi8(slot[6], slot[7])
                           : _mm512_unpacklo_epi8(slot[6], slot[7]);
        for (int b = 0; b < 2; b++) {
            __m512i quad0 = b ? _mm512_unpackhi_epi16(pair01, pair23)
                              : _mm512_unpacklo_epi16(pair01, pair23);
            __m512i quad1 = b ? _mm512_unpackhi_epi16(pair45, pair67)
                              : _mm512_unpacklo_epi16(pair45, pair67);
            for (int c = 0; c < 2; c++) {
                __m512i octet = c ? _mm512_unpackhi_epi32(quad0, quad1)
                                  : _mm512_unpacklo_epi32(quad0, quad1);
                codes[4 * a + 2 * b + c] = _mm512_gf2p8affine_epi64_epi8(bit_of_byte, octet, 0);
            }
        }
    }
}

/*
 * What decode_row_chunk needs besides the row: the plane of each slot and
 * two byte permutations. These make (low byte, high byte) words of the
 * codes in one register: `first_words` from its lanes 0 and 1, and
 * `second_words` from lanes 2 and 3.
 */
typedef struct decode_plan {
    const uint8_t *slot_plane[16]; /* kZeroBytes for a slot without a plane */
    size_t offset_mask[16];        /* 0 for such a slot, so it reads kZeroBytes */
    __m512i first_words;
    __m512i second_words;
} decode_plan;

RBE_TARGET_DECODE
static void make_decode_plan(const rbe_gemm_args *args, decode_plan *plan)
{
    unsigned first_slot = 16 - args->layout->bits;
    uint8_t first[64], second[64];

    for (unsigned s = 0; s < 16; s++) {
        int has_plane = s >= first_slot && s < first_slot + args->planes_used;
        plan->slot_plane[s] = has_plane ? args->planes[s - first_slot] : kZeroBytes;
        plan->offset_mask[s] = has_plane ? ~(size_t)0 : 0;
    }

    for (int j = 0; j < 32; j++) {
        first[2 * j] = (uint8_t)j;
        first[2 * j + 1] = (uint8_t)(64 + j);
        second[2 * j] = (uint8_t)(32 + j);
        second[2 * j + 1] = (uint8_t)(96 + j);
    }
    plan->first_words = _mm512_loadu_si512(first);
    plan->second_words = _mm512_loadu_si512(second);
}

/*
 * Loads the 64 plane bytes of slot s at offset, zero for a slot without a
 * plane, without branches. Whole chunks avoid the masked load: moving a
 * mask into a mask register costs several cycles on Zen 4.
 */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE __m512i load_slot(const decode_plan *plan, unsigned s, size_t offset,
                                           __mmask64 valid)
{
    const uint8_t *at = plan->slot_plane[s] + (offset & plan->offset_mask[s]);

    if (valid == ~(__mmask64)0) {
        return _mm512_loadu_si512(at);
    }
    return _mm512_maskz_loadu_epi8(valid, at);
}

/*
 * Writes the codes c_P of one row's chunk: plane p gives bit B-1-p. Code
 * bits 8..15 come from slots 0..7 and bits 0..7 from slots 8..15, slot
 * 16 - B + p holding plane p. Bytes past the chunk load as zero, so all
 * 512 codes are written.
 */
/*
 * The plane offset that row r of the chunk at first_col prefetches. The
 * next row block's rows are contiguous in each plane, so its chunks and
 * rows map to consecutive 64-byte lines in the order they are visited.
 * That keeps each plane's reads in address order. In a read-only test of
 * this access pattern, 64 MB of planes streamed in 2.3 to 2.8 ms this way
 * and in 3.2 to 3.3 ms when each row prefetched its own line of the next
 * block; P = 8 at 8192 x 8192 fell from about 6.2 to 5.8 ms.
 */
static size_t prefetch_offset(const rbe_layout *layout, size_t first_row, size_t first_col,
                              size_t r)
{
    size_t next_block = (first_row + PREFETCH_BLOCKS * ROWS_PER_STEP) * layout->row_stride;
    size_t line = (first_col / CHUNK_COLS) * ROWS_PER_STEP + r;
    return next_block + 64 * line;
}

RBE_TARGET_DECODE
static void decode_row_chunk(const rbe_gemm_args *args, size_t r, const chunk *ch,
                             const decode_plan *plan, span_state *st)
{
    const rbe_layout *layout = args->layout;
    size_t offset = (st->first_row + r) * layout->row_stride + ch->first_col / 8;
    size_t ahead = prefetch_offset(layout, st->first_row, ch->first_col, r);
    size_t bytes = (ch->cols + 7) / 8;
    __mmask64 valid = bytes >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << bytes) - 1);
    __m512i slot[16];
    __m512i low[8];
    __m512i high[8];

    if (ahead + 64 <= layout->plane_bytes) {
        for (unsigned p = 0; p < args->planes_used; p++) {
            _mm_prefetch((const char *)(args->planes[p] + ahead), _MM_HINT_T1);
        }
    }

#pragma GCC unroll 8
    for (unsigned s = 8; s < 16; s++) {
        slot[s] = load_slot(plan, s, offset, valid);
    }

    transpose_slots(slot + 8, low);
    if (!st->wide) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            _mm512_storeu_si512(st->codes.narrow[r] + 64 * i, low[i]);
        }
        return;
    }

#pragma GCC unroll 8
    for (unsigned s = 0; s < 8; s++) {
        slot[s] = load_slot(plan, s, offset, valid);
    }
    transpose_slots(slot, high);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        uint16_t *out = st->codes.wide[r] + 64 * i;
        _mm512_storeu_si512(out, _mm512_permutex2var_epi8(low[i], plan->first_words, high[i]));
        _mm512_storeu_si512(out + 32,
                            _mm512_permutex2var_epi8(low[i], plan->second_words, high[i]));
    }
}

/*
 * Points x_chunk at the span's x for the chunk: x itself for one batch entry
 * and whole blocks, else a copy in x_copy that is zero past the last column.
 * The copy spares the inner loop any masks, and it keeps rows K floats
 * apart from competing for the same cache sets when K is a power of two.
 * Adds x to the running x lanes and keeps each group's sum.
 */
RBE_TARGET_DECODE
static void load_x_chunk(const rbe_gemm_args *args, const chunk *ch, span_state *st)
{
    size_t cols = args->layout->cols;
    int copy = st->batch > 1 || ch->cols % 16 != 0;

    st->x_chunk = copy ? st->x_copy[0] : args->x + st->first_m * cols + ch->first_col;
    for (size_t i = 0; i < st->batch; i++) {
        const float *x_row = args->x + (st->first_m + i) * cols + ch->first_col;
        __m512 lanes = st->x_lanes[i];
        int end = 0;

        for (size_t t = 0; t < ch->blocks; t++) {
            size_t valid = ch->cols - 16 * t;
            __m512 value = valid >= 16 ? _mm512_loadu_ps(x_row + 16 * t)
                                       : _mm512_maskz_loadu_ps((__mmask16)((1u << valid) - 1u),
                                                               x_row + 16 * t);
            if (copy) {
                _mm512_storeu_ps(st->x_copy[i] + 16 * t, value);
            }
            lanes = _mm512_add_ps(lanes, value);
            if ((ch->group_ends >> t) & 1u) {
                st->x_sums[i][end++] = reduce_lanes(lanes);
                lanes = _mm512_setzero_ps();
            }
        }
        st->x_lanes[i] = lanes;
    }
}

RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE __m512 load_weights(const void *codes, size_t t, const int wide)
{
    if (wide) {
        const uint16_t *block = (const uint16_t *)codes + block_offset(t);
        __m256i words = _mm256_loadu_si256((const __m256i *)block);
        return _mm512_cvtepi32_ps(_mm512_cvtepu16_epi32(words));
    }
    const uint8_t *block = (const uint8_t *)codes + block_offset(t);
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)block)));
}

/*
 * Multiplies the chunk's codes of `tile_rows` rows from r with `tile_batch`
 * batch entries from span index first. Both are constants in every caller,
 * so the tile_rows * tile_batch accumulators stay in registers. Eight of
 * them hide the latency of the fused multiply-add.
 */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE void multiply_tile(const rbe_gemm_args *args, const chunk *ch,
                                            span_state *st, size_t r, size_t first,
                                            const int tile_rows, const int tile_batch,
                                            const int wide)
{
    const rbe_layout *layout = args->layout;
    float center_offset = rbe_center_offset(layout->bits, args->planes_used);
    const uint8_t *codes = wide ? (const uint8_t *)st->codes.wide[r] : st->codes.narrow[r];
    size_t row_bytes = wide ? CHUNK_COLS * 2 : CHUNK_COLS;
    const float *x_chunk = st->x_chunk + first * CHUNK_COLS;
    __m512 acc[ROWS_PER_STEP][BATCH_SPAN];
    int end = 0;

#pragma GCC unroll 8
    for (int i = 0; i < tile_batch; i++) {
#pragma GCC unroll 8
        for (int q = 0; q < tile_rows; q++) {
            acc[q][i] = st->acc[r + (size_t)q][first + (size_t)i];
        }
    }

    for (size_t t = 0; t < ch->blocks; t++) {
        __m512 weight[ROWS_PER_STEP];

#pragma GCC unroll 8
        for (int q = 0; q < tile_rows; q++) {
            weight[q] = load_weights(codes + (size_t)q * row_bytes, t, wide);
        }
#pragma GCC unroll 8
        for (int i = 0; i < tile_batch; i++) {
            __m512 x_block = _mm512_loadu_ps(x_chunk + (size_t)i * CHUNK_COLS + 16 * t);
            /* Keeps x in a register: GCC 12 folds the load into every
             * multiply-add that uses it, and those extra loads cost a
             * third of the batch throughput. */
            __asm__("" : "+v"(x_block));
#pragma GCC unroll 8
            for (int q = 0; q < tile_rows; q++) {
                acc[q][i] = _mm512_fmadd_ps(x_block, weight[q], acc[q][i]);
            }
        }

        if ((ch->group_ends >> t) & 1u) {
            size_t g = (ch->first_col + 16 * t) / layout->group_size;
#pragma GCC unroll 8
            for (int q = 0; q < tile_rows; q++) {
                size_t row = st->first_row + r + (size_t)q;
                size_t param = row * layout->groups + g;
#pragma GCC unroll 8
                for (int i = 0; i < tile_batch; i++) {
                    float *y = args->y + (st->first_m + first + (size_t)i) * layout->rows + row;
                    *y = rbe_gemm_add_group_sums(*y, reduce_lanes(acc[q][i]),
                                                 st->x_sums[first + (size_t)i][end],
                                                 args->scale[param], center_offset,
                                                 args->zero[param]);
                    acc[q][i] = _mm512_setzero_ps();
                }
            }
            end++;
        }
    }

#pragma GCC unroll 8
    for (int i = 0; i < tile_batch; i++) {
#pragma GCC unroll 8
        for (int q = 0; q < tile_rows; q++) {
            st->acc[r + (size_t)q][first + (size_t)i] = acc[q][i];
        }
    }
}

/* Runs one row of the chunk for up to 8 batch entries from first. */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE void multiply_single_row(const rbe_gemm_args *args, const chunk *ch,
                                                  span_state *st, size_t r, size_t first,
                                                  size_t count, const int wide)
{
    switch (count) {
    case 1: multiply_tile(args, ch, st, r, first, 1, 1, wide); break;
    case 2: multiply_tile(args, ch, st, r, first, 1, 2, wide); break;
    case 3: multiply_tile(args, ch, st, r, first, 1, 3, wide); break;
    case 4: multiply_tile(args, ch, st, r, first, 1, 4, wide); break;
    case 5: multiply_tile(args, ch, st, r, first, 1, 5, wide); break;
    case 6: multiply_tile(args, ch, st, r, first, 1, 6, wide); break;
    case 7: multiply_tile(args, ch, st, r, first, 1, 7, wide); break;
    default: multiply_tile(args, ch, st, r, first, 1, 8, wide); break;
    }
}

/*
 * Covers the decoded rows and the span's batch with tiles shaped by the
 * batch size: 8 rows x 1, 8 x 2, 4 x 4 or 2 x 8. Tiles of 16 accumulators
 * load 1 vector per 1.6 to 2 multiply-adds. Partial tiles at the edges run
 * row by row.
 */
RBE_TARGET_DECODE
static RBE_ALWAYS_INLINE void multiply_chunk(const rbe_gemm_args *args, const chunk *ch,
                                             span_state *st, const int wide)
{
    size_t tile_batch = 1;
    while (tile_batch < 8 && tile_batch * 2 <= st->batch) {
        tile_batch *= 2;
    }
    size_t tile_rows = tile_batch == 1 ? 8 : 16 / tile_batch;

    for (size_t r = 0; r < st->rows; r += tile_rows) {
        for (size_t first = 0; first < st->batch; first += tile_batch) {
            size_t rows = st->rows - r < tile_rows ? st->rows - r : tile_rows;
            size_t count = st->batch - first < tile_batch ? st->batch - first : tile_batch;

            if (rows < tile_rows || count < tile_batch) {
                for (size_t q = 0; q < rows; q++) {
                    multiply_single_row(args, ch, st, r + q, first, count, wide);
                }
            } else if (tile_batch == 1) {
                multiply_tile(args, ch, st, r, first, 8, 1, wide);
            } else if (tile_batch == 2) {
                multiply_tile(args, ch, st, r, first, 8, 2, wide);
            } else if (tile_batch == 4) {
                multiply_tile(args, ch, st, r, first, 4, 4, wide);
            } else {
                multiply_tile(args, ch, st, r, first, 2, 8, wide);
            }
        }
    }
}

RBE_TARGET_DECODE
static void multiply_chunk_narrow(const rbe_gemm_args *args, const chunk *ch, span_state *st)
{
    multiply_chunk(args, ch, st, 0);
}

RBE_TARGET_DECODE
static void multiply_chunk_wide(const rbe_gemm_args *args, const chunk *ch, span_state *st)
{
    multiply_chunk(args, ch, st, 1);
}

RBE_TARGET_DECODE
static void run_span(const rbe_gemm_args *args, span_state *st)
{
    const rbe_layout *layout = args->layout;
    decode_plan plan;

    make_decode_plan(args, &plan);

    for (size_t i = 0; i < st->batch; i++) {
        st->x_lanes[i] = _mm512_setzero_ps();
        for (size_t r = 0; r < st->rows; r++) {
            st->acc[r][i] = _mm512_setzero_ps();
            args->y[(st->first_m + i) * layout->rows + st->first_row + r] = 0.0f;
        }
    }

    for (size_t col = 0; col < layout->cols; col += CHUNK_COLS) {
        chunk ch = chunk_at(layout, col);

        for (size_t r = 0; r < st->rows; r++) {
            decode_row_chunk(args, r, &ch, &plan, st);
        }
        load_x_chunk(args, &ch, st);
        if (st->wide) {
            multiply_chunk_wide(args, &ch, st);
        } else {
            multiply_chunk_narrow(args, &ch, st);
        }
    }
}

void rbe_gemm_decode_rows_avx512(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    span_state st;

    st.wide = args->layout->bits > 8;
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
typedef int rbe_gemm_decode_avx512_unused;
#endif
