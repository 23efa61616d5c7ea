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
 * plane rows and writes 8 * nbytes codes q_P, midpoint included. bits may
 * be 1 here, which extracts the raw bits of a single plane.
 */
typedef void (*rbe_unpack_fn)(const uint8_t *const *plane_rows, size_t nbytes,
                              unsigned bits, unsigned planes_used, uint16_t *codes);

/* out[i] = ((float)codes[i] - zero) * scale, for any n. */
typedef void (*rbe_dequant_f32_fn)(const uint16_t *codes, size_t n, float scale,
                                   float zero, float *out);

/*
 * inout[i] = (rint(inout[i] / scale) + (bit[i] ? delta_set : delta_clear)) * scale,
 * where bit[i] is 0 or 1. The rounding recovers the integer q_P - zero.
 */
typedef void (*rbe_refine_f32_fn)(const uint16_t *bit, size_t n, float scale,
                                  float delta_set, float delta_clear, float *inout);

/* out[i] = (int8_t)(codes[i] - 2^(bits-1)), for bits <= 8. */
typedef void (*rbe_dequant_i8_fn)(const uint16_t *codes, size_t n, unsigned bits,
                                  int8_t *out);

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
} rbe_gemm_args;

/* Lanes of the fixed accumulation order that every GEMM kernel follows. */
#define RBE_GEMM_LANES 16

/* Computes y for rows [row_begin, row_end) and every batch entry. */
typedef void (*rbe_gemm_rows_fn)(const rbe_gemm_args *args, size_t row_begin, size_t row_end);

typedef struct rbe_kernels {
    rbe_isa isa;
    rbe_encode_row_fn encode_row;
    rbe_unpack_fn unpack;
    rbe_dequant_f32_fn dequant_f32;
    rbe_refine_f32_fn refine_f32;
    rbe_dequant_i8_fn dequant_i8;
    rbe_gemm_rows_fn gemm_rows; /* needs group_size % 16 == 0 or one group per row */
    const char *names[6];       /* indexed by rbe_kernel */
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
 *   total + scale * (sum(lanes) + (midpoint - zero) * sum(x_lanes)).
 */
static inline float rbe_gemm_add_group(float total, const float *lanes, const float *x_lanes,
                                       float scale, float midpoint, float zero)
{
    float bits_sum = rbe_gemm_reduce_lanes(lanes);
    float x_sum = rbe_gemm_reduce_lanes(x_lanes);
    float offset = (midpoint - zero) * x_sum;
    float group_sum = bits_sum + offset;
    float scaled = scale * group_sum;
    return total + scaled;
}

/* The midpoint term of q_P as a float: 2^(B-P-1), or 0 when P == B. */
static inline float rbe_midpoint(unsigned bits, unsigned planes_used)
{
    return planes_used < bits ? (float)(1u << (bits - planes_used - 1)) : 0.0f;
}

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
#define RBE_TARGET_AVX512 __attribute__((target("avx512f")))
void rbe_gemm_rows_avx512(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
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
#if defined(__aarch64__)
void rbe_gemm_rows_neon(const rbe_gemm_args *args, size_t row_begin, size_t row_end);
#endif
#endif

#endif /* RBE_EDGE_INTERNAL_H */
