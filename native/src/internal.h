/*
 * Declarations shared by the C core's translation units: the kernel table
 * that dispatch fills and the per-ISA kernels behind it. Kernels trust their
 * arguments; the public functions validate before calling them.
 */
#ifndef RBE_EDGE_INTERNAL_H
#define RBE_EDGE_INTERNAL_H

#include "rbe_edge.h"

/* Columns that one unpack call handles at most; a multiple of 64. */
#define RBE_CHUNK_COLS 256

/*
 * Packs one row of codes into `bits` plane rows. Writes ceil(cols / 8) bytes
 * of each plane row, with zero bits past cols.
 */
typedef void (*rbe_encode_row_fn)(const uint16_t *codes, size_t cols, unsigned bits,
                                  uint8_t *const *plane_rows);

/*
 * Reads `nbytes` bytes (a multiple of 8) from each of the top `planes_used`
 * plane rows and writes 8 * nbytes codes q_P = top bits + 2^(B-P-1) (the
 * integer half a code above the center c_P; 0 added when P == B). bits may
 * be 1 here, which extracts the raw bits of a single plane.
 */
typedef void (*rbe_unpack_fn)(const uint8_t *const *plane_rows, size_t nbytes,
                              unsigned bits, unsigned planes_used, uint16_t *codes);

/* out[i] = ((float)codes[i] - zero) * scale, for any n. */
typedef void (*rbe_dequant_f32_fn)(const uint16_t *codes, size_t n, float scale,
                                   float zero, float *out);

/*
 * inout[i] = ((rint(inout[i] / scale * 2) + (bit[i] ? delta_set : delta_clear)) * 0.5) * scale,
 * where bit[i] is 0 or 1. The rounding recovers the integer 2 * (c_P - zero),
 * and the deltas are in the same doubled units.
 */
typedef void (*rbe_refine_f32_fn)(const uint16_t *bit, size_t n, float scale,
                                  float delta_set, float delta_clear, float *inout);

/* out[i] = (int8_t)(codes[i] - 2^(bits-1)), for bits <= 8. */
typedef void (*rbe_dequant_i8_fn)(const uint16_t *codes, size_t n, unsigned bits,
                                  int8_t *out);

/* A run of up to RBE_CHUNK_COLS columns of one row, the unit of work of the
 * codec and update loops. */
typedef struct rbe_chunk {
    size_t row;
    size_t first_col;   /* multiple of RBE_CHUNK_COLS */
    size_t cols;        /* valid columns in this chunk */
    size_t plane_bytes; /* bytes to read from each plane row, a multiple of 8 */
} rbe_chunk;

static inline rbe_chunk rbe_chunk_at(const rbe_layout *layout, size_t row, size_t first_col)
{
    rbe_chunk result;
    size_t first_byte = first_col / 8;
    size_t bytes_left = layout->row_stride - first_byte;
    size_t cols_left = layout->cols - first_col;

    result.row = row;
    result.first_col = first_col;
    result.cols = cols_left < RBE_CHUNK_COLS ? cols_left : RBE_CHUNK_COLS;
    result.plane_bytes = bytes_left < RBE_CHUNK_COLS / 8 ? bytes_left : RBE_CHUNK_COLS / 8;
    return result;
}

static inline void rbe_point_plane_rows(const rbe_layout *layout,
                                        const uint8_t *const *planes, unsigned count,
                                        const rbe_chunk *at, const uint8_t **plane_rows)
{
    size_t offset = at->row * layout->row_stride + at->first_col / 8;

    for (unsigned p = 0; p < count; p++) {
        plane_rows[p] = planes[p] + offset;
    }
}

/* Arguments of one bit-serial product, validated by rbe_gemm_f32. */
typedef struct rbe_gemm_args {
    const rbe_layout *layout;
    const uint8_t *const *planes;
    unsigned planes_used;
    const float *scale;
    const float *zero;
    const float *x;   /* [batch, cols] */
    size_t batch;
    float *y;         /* [batch, rows] */
    const float *lut;        /* lookup path: rbe_gemm_lut_tables output, else NULL */
    const float *lut_x_sums; /* lookup path: [batch, groups] sums of x per group */
} rbe_gemm_args;

/* The center offset of c_P as a float: (2^(B-P) - 1) / 2, exact. */
static inline float rbe_center_offset(unsigned bits, unsigned planes_used)
{
    return planes_used < bits ? (float)(1u << (bits - planes_used - 1)) - 0.5f : 0.0f;
}

/* Lanes of the fixed accumulation order that every GEMM kernel follows. */
#define RBE_GEMM_LANES 16

/* Computes y for rows [row_begin, row_end) and every batch entry. */
typedef void (*rbe_gemm_rows_fn)(const rbe_gemm_args *args, size_t row_begin, size_t row_end);

/*
 * The two ways a product runs. RBE_GEMM_DECODE rebuilds each weight's code
 * c_P from its P plane bits and adds x * c_P with one fused multiply-add,
 * so its cost hardly depends on P. RBE_GEMM_LOOKUP adds, per plane and per
 * 4 columns, one entry of a 16-entry table of partial sums of x, so its
 * cost grows with P times the batch.
 */
typedef enum rbe_gemm_path {
    RBE_GEMM_DECODE = 0,
    RBE_GEMM_LOOKUP = 1
} rbe_gemm_path;

/* Columns that one lookup table covers, and its entries (every subset). */
#define RBE_LUT_COLS 4
#define RBE_LUT_ENTRIES 16
/* Most planes and batch entries that the lookup kernels keep state for in one pass. */
#define RBE_LUT_MAX_PLANES 3
#define RBE_LUT_BATCH_SPAN 8

/*
 * Chooses the path from the layout, P and the batch only, never from the
 * ISA, so every kernel family rounds the same way. The lookup path needs
 * groups that start on a 16-column boundary. NOTE: the limits come from
 * the AVX-512 kernels on one AMD EPYC Zen 4 machine (8192 x 8192, 8-bit
 * codes, one thread). There a lookup pass cost about 1.2 ms per plane and
 * batch entry, and the decode path about 2 + 1.7 M ms (see
 * docs/benchmarks.md). Other CPUs may place the crossing elsewhere: AVX2
 * alone would favour lookups up to about P = 8.
 */
static inline rbe_gemm_path rbe_gemm_choose_path(const rbe_layout *layout, unsigned planes_used,
                                                 size_t batch)
{
    if (layout->groups > 1 && layout->group_size % 16 != 0) {
        return RBE_GEMM_DECODE;
    }
    if (planes_used == 1 || (planes_used == 2 && batch <= 4) ||
        (planes_used == RBE_LUT_MAX_PLANES && batch == 1)) {
        return RBE_GEMM_LOOKUP;
    }
    return RBE_GEMM_DECODE;
}

/* Lookup tables of one product: ceil(cols / 4) tables of 16 floats per batch entry. */
static inline size_t rbe_gemm_lut_tables_per_row(const rbe_layout *layout)
{
    return (layout->cols + RBE_LUT_COLS - 1) / RBE_LUT_COLS;
}

/* Tables per group on the lookup path; with one group per row, the whole row. */
static inline size_t rbe_gemm_lut_group_tables(const rbe_layout *layout)
{
    return (layout->group_size + RBE_LUT_COLS - 1) / RBE_LUT_COLS;
}

/*
 * Points starts[i] at row first_row + i of plane p, for i < block_rows.
 * Slots past the `rows` valid ones repeat the last valid row, so that the
 * SIMD kernels load whole blocks without reading outside the planes.
 */
static inline void rbe_gemm_lut_row_starts(const rbe_gemm_args *args, unsigned p,
                                           size_t first_row, size_t rows, size_t block_rows,
                                           const uint8_t **starts)
{
    for (size_t i = 0; i < block_rows; i++) {
        size_t row = first_row + (i < rows ? i : rows - 1);
        starts[i] = args->planes[p] + row * args->layout->row_stride;
    }
}

/*
 * Fills the tables and group sums of x that the lookup path reads. Table t
 * of batch entry m, at tables + (m * rbe_gemm_lut_tables_per_row + t) * 16,
 * has entry e = the sum of x[m, 4 t + b] over the bits b set in e, built as
 * entry[2^b + i] = entry[i] + x[m, 4 t + b] for i < 2^b from entry[0] = +0.0,
 * with x = 0 past the last column. x_sums[m * groups + g] is the group's
 * sum of x in the lanes and tree of rbe_gemm_add_group.
 */
void rbe_gemm_lut_tables(const rbe_layout *layout, const float *x, size_t batch, float *tables,
                         float *x_sums);

/* The code c_P of column `col` in one row: plane p gives bit B-1-p. */
static inline unsigned rbe_gemm_code_at(const uint8_t *const *plane_rows, unsigned bits,
                                        unsigned planes_used, size_t col)
{
    unsigned code = 0;

    for (unsigned p = 0; p < planes_used; p++) {
        code |= (unsigned)((plane_rows[p][col / 8] >> (col % 8)) & 1u) << (bits - 1 - p);
    }
    return code;
}

/* Accumulator units per upper step: int8 state then covers +-127/128 of a step. */
#define RBE_ACCUM_SHIFT 7
#define RBE_ACCUM_ONE (1 << RBE_ACCUM_SHIFT)
/* Bound on |delta| * RBE_ACCUM_ONE, far above any step count that fits a code. */
#define RBE_ACCUM_LIMIT 1048576.0f

/* One group segment of an upper-bitplane update, prepared by rbe_update_upper. */
typedef struct rbe_update_segment {
    float factor;          /* learning_rate / (scale * 2^(B-U)): gradient to upper steps */
    uint32_t key;          /* random stream of this (seed, step) */
    uint32_t first_index;  /* element index of the segment's first weight */
    uint32_t max_upper;    /* 2^U - 1 */
    rbe_update_mode mode;
} rbe_update_segment;

/*
 * Moves the upper parts `upper` (values 0..2^U-1) of n weights against their
 * gradients, and in accumulate mode carries the sub-step remainder in accum.
 */
typedef void (*rbe_update_fn)(const rbe_update_segment *segment, uint16_t *upper,
                              const float *grad, int8_t *accum, size_t n);

/* 32-bit integer mixer (the MurmurHash3 finalizer constants). */
static inline uint32_t rbe_hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return x;
}

/* Uniform float in [0, 1) with 24 random bits, for element `index` of a stream. */
static inline float rbe_uniform(uint32_t key, uint32_t index)
{
    return (float)(rbe_hash32(key ^ index) >> 8) * (1.0f / 16777216.0f);
}

/*
 * One step of the transposed product: a tile of decoded weight rows times
 * the matching columns of dy, added into dx. For every m < batch and
 * k < cols, the kernel runs
 *   dx[m * dx_stride + k] += dy[m * dy_stride + n] * w[n * w_stride + k]
 * for n = 0..rows-1 in increasing order, rounding each product and then
 * each sum (no fused multiply-add), so all kernels agree bit for bit.
 */
typedef struct rbe_gemm_t_tile {
    const float *dy;    /* column n0 of dy: dy[m * dy_stride + n] is dy[m, n0 + n] */
    size_t dy_stride;   /* the layer's rows */
    size_t batch;
    const float *w;     /* decoded weights of rows n0.., columns k0.. */
    size_t w_stride;
    size_t rows;        /* rows in the tile */
    size_t cols;        /* columns in the tile */
    float *dx;          /* column k0 of dx */
    size_t dx_stride;   /* the layer's cols */
} rbe_gemm_t_tile;

typedef void (*rbe_gemm_t_tile_fn)(const rbe_gemm_t_tile *tile);

/* Inputs of one weight-gradient computation, validated by rbe_dense_update. */
typedef struct rbe_dense_grad_args {
    const float *x;     /* [batch, cols] */
    const float *dy;    /* [batch, rows] */
    size_t rows;
    size_t cols;
    size_t batch;
    float grad_scale;
} rbe_dense_grad_args;

/*
 * Writes rows row_begin..row_begin+row_count-1 of the weight gradient into
 * tile[r * cols + k]: grad_scale * acc, where acc starts at +0.0 and adds
 * dy[m, row] * x[m, k] for m = 0..batch-1 in order, each product rounded.
 */
typedef void (*rbe_dense_grad_fn)(const rbe_dense_grad_args *args, size_t row_begin,
                                  size_t row_count, float *tile);

/*
 * Folds accumulators into n full B-bit codes (LSB re-estimation); see
 * rbe_fold_scalar for the arithmetic every kernel follows.
 */
typedef void (*rbe_fold_fn)(uint16_t *codes, int8_t *accum, size_t n, unsigned bits,
                            unsigned upper_planes);

typedef struct rbe_kernels {
    rbe_isa isa;
    rbe_encode_row_fn encode_row;
    rbe_unpack_fn unpack;
    rbe_dequant_f32_fn dequant_f32;
    rbe_refine_f32_fn refine_f32;
    rbe_dequant_i8_fn dequant_i8;
    rbe_gemm_rows_fn gemm_rows; /* needs group_size % 16 == 0 or one group per row */
    rbe_update_fn update_upper;
    rbe_gemm_t_tile_fn gemm_t_tile;
    rbe_dense_grad_fn dense_grad;
    rbe_fold_fn fold;
    const char *names[10];      /* indexed by rbe_kernel */
} rbe_kernels;

/*
 * Pairwise sum of 16 lanes (j + 8, + 4, + 2, + 1), the final step of every
 * GEMM kernel, shared so that all kernels round identically.
 */
static inline float rbe_gemm_reduce_lanes(const float *lanes)
{
    float level[8];

    for (int j = 0; j < 8; j++) {
        level[j] = lanes[j] + lanes[j + 8];
    }
    for (int width = 4; width >= 1; width /= 2) {
        for (int j = 0; j < width; j++) {
            level[j] = level[j] + level[j + width];
        }
    }
    return level[0];
}

/*
 * Adds one group's contribution to a row's running sum:
 *   total + scale * (sum(lanes) + (center_offset - zero) * sum(x_lanes)).
 */
static inline float rbe_gemm_add_group_sums(float total, float bits_sum, float x_sum,
                                            float scale, float center_offset, float zero)
{
    float offset = (center_offset - zero) * x_sum;
    float group_sum = bits_sum + offset;
    float scaled = scale * group_sum;
    return total + scaled;
}

static inline float rbe_gemm_add_group(float total, const float *lanes, const float *x_lanes,
                                       float scale, float center_offset, float zero)
{
    float bits_sum = rbe_gemm_reduce_lanes(lanes);
    float x_sum = rbe_gemm_reduce_lanes(x_lanes);
    return rbe_gemm_add_group_sums(total, bits_sum, x_sum, scale, center_offset, zero);
}

/*
 * Checks every argument of an upper-bitplane update except the gradient:
 * the checks of rbe_update_upper in its order, minus the gradient's.
 */
rbe_status rbe_update_check(const rbe_layout *layout, uint8_t *const *planes,
                            const float *scale, const int8_t *accum,
                            const rbe_update_params *params);

/*
 * Applies an update, validated by the caller, to rows [row_begin, row_end)
 * with the gradient of row r at grad_rows + (r - row_begin) * cols. Random
 * numbers use the global element index, so updating a matrix in row ranges
 * equals one rbe_update_upper call bit for bit. With `fold` nonzero in
 * accumulate mode, each row is folded right after its step, as
 * rbe_fold_lsb would fold it afterwards (every plane must then be present).
 */
void rbe_update_rows(const rbe_layout *layout, const rbe_kernels *kernels,
                     uint8_t *const *planes, const float *scale, const float *grad_rows,
                     int8_t *accum, const rbe_update_params *params, int fold,
                     size_t row_begin, size_t row_end);

/* Stores the largest |value| of data[0..n-1]; returns 0 if any is not finite. */
int rbe_max_abs_finite(const float *data, size_t n, float *max_abs);

/* Work on units [begin, end) of one call; `context` carries its arguments. */
typedef void (*rbe_range_fn)(const void *context, size_t begin, size_t end);

/*
 * Runs fn over [0, count), split into `threads` contiguous ranges whose
 * bounds are multiples of `granule` (the last one ends at count). The
 * calling thread runs the first range, and a thread that cannot start
 * leaves its range to the calling thread. threads 0 or 1 runs everything
 * here. Returns RBE_ERR_UNSUPPORTED, before running anything, for threads
 * above RBE_MAX_THREADS or above 1 on a build without threads.
 */
rbe_status rbe_run_split(rbe_range_fn fn, const void *context, size_t count, size_t granule,
                         unsigned threads);

/*
 * Checks the arguments that rbe_gemm_f32 and rbe_gemm_t_f32 share, for a
 * product that reads `in` ([batch, cols] or [batch, rows]) and writes `out`.
 */
rbe_status rbe_check_product_arguments(const rbe_layout *layout, const uint8_t *const *planes,
                                       unsigned planes_used, const float *scale,
                                       const float *zero, const float *in, size_t batch,
                                       const float *out);

/* Returns the kernel table for `isa`, or NULL when this CPU cannot run it. */
const rbe_kernels *rbe_kernels_for(rbe_isa isa);

/* Checks a layout filled by rbe_layout_init (the caller may have edited it). */
rbe_status rbe_layout_check(const rbe_layout *layout);

/* Checks every scale and zero point of a layout; see rbe_decode_f32. */
rbe_status rbe_check_scale_zero(const rbe_layout *layout, const float *scale,
                                const float *zero);

void rbe_encode_row_scalar(const uint16_t *codes, size_t cols, unsigned bits,
                           uint8_t *const *plane_rows);
void rbe_unpack_scalar(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                       unsigned planes_used, uint16_t *codes);
void rbe_dequant_f32_scalar(const uint16_t *codes, size_t n, float scale, float zero,
                            float *out);
void rbe_refine_f32_scalar(const uint16_t *bit, size_t n, float scale, float delta_set,
                           float delta_clear, float *inout);
void rbe_dequant_i8_scalar(const uint16_t *codes, size_t n, unsigned bits, int8_t *out);
void rbe_gemm_rows_scalar(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_gemm_decode_rows_scalar(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_gemm_lut_rows_scalar(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_update_upper_scalar(const rbe_update_segment *segment, uint16_t *upper,
                             const float *grad, int8_t *accum, size_t n);
void rbe_gemm_t_tile_scalar(const rbe_gemm_t_tile *tile);
void rbe_dense_grad_scalar(const rbe_dense_grad_args *args, size_t row_begin, size_t row_count,
                           float *tile);
void rbe_fold_scalar(uint16_t *codes, int8_t *accum, size_t n, unsigned bits,
                     unsigned upper_planes);

#if defined(__x86_64__) || defined(__i386__)
#define RBE_HAVE_X86 1
#define RBE_TARGET_AVX2 __attribute__((target("avx2")))
void rbe_encode_row_avx2(const uint16_t *codes, size_t cols, unsigned bits,
                         uint8_t *const *plane_rows);
void rbe_unpack_avx2(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                     unsigned planes_used, uint16_t *codes);
void rbe_dequant_f32_avx2(const uint16_t *codes, size_t n, float scale, float zero,
                          float *out);
void rbe_refine_f32_avx2(const uint16_t *bit, size_t n, float scale, float delta_set,
                         float delta_clear, float *inout);
void rbe_dequant_i8_avx2(const uint16_t *codes, size_t n, unsigned bits, int8_t *out);
void rbe_gemm_rows_avx2(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_gemm_decode_rows_avx2(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_gemm_lut_rows_avx2(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
#define RBE_TARGET_AVX512 __attribute__((target("avx512f")))
void rbe_gemm_rows_avx512(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
/* Needs AVX-512BW, VBMI and GFNI besides AVX-512F; see rbe_gemm_rows_avx512. */
void rbe_gemm_decode_rows_avx512(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_gemm_lut_rows_avx512(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_update_upper_avx2(const rbe_update_segment *segment, uint16_t *upper,
                           const float *grad, int8_t *accum, size_t n);
void rbe_gemm_t_tile_avx2(const rbe_gemm_t_tile *tile);
void rbe_dense_grad_avx2(const rbe_dense_grad_args *args, size_t row_begin, size_t row_count,
                         float *tile);
void rbe_fold_avx2(uint16_t *codes, int8_t *accum, size_t n, unsigned bits,
                   unsigned upper_planes);
#endif

#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#define RBE_HAVE_NEON 1
void rbe_encode_row_neon(const uint16_t *codes, size_t cols, unsigned bits,
                         uint8_t *const *plane_rows);
void rbe_unpack_neon(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                     unsigned planes_used, uint16_t *codes);
void rbe_dequant_f32_neon(const uint16_t *codes, size_t n, float scale, float zero,
                          float *out);
void rbe_refine_f32_neon(const uint16_t *bit, size_t n, float scale, float delta_set,
                         float delta_clear, float *inout);
void rbe_dequant_i8_neon(const uint16_t *codes, size_t n, unsigned bits, int8_t *out);
void rbe_fold_neon(uint16_t *codes, int8_t *accum, size_t n, unsigned bits,
                   unsigned upper_planes);
#if defined(__aarch64__)
void rbe_gemm_rows_neon(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_gemm_decode_rows_neon(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_gemm_lut_rows_neon(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
void rbe_update_upper_neon(const rbe_update_segment *segment, uint16_t *upper,
                           const float *grad, int8_t *accum, size_t n);
void rbe_gemm_t_tile_neon(const rbe_gemm_t_tile *tile);
void rbe_dense_grad_neon(const rbe_dense_grad_args *args, size_t row_begin, size_t row_count,
                         float *tile);
#endif
#endif

#endif /* RBE_EDGE_INTERNAL_H */
