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

typedef struct rbe_kernels {
    rbe_isa isa;
    rbe_encode_row_fn encode_row;
    rbe_unpack_fn unpack;
    rbe_dequant_f32_fn dequant_f32;
    rbe_refine_f32_fn refine_f32;
    rbe_dequant_i8_fn dequant_i8;
    const char *names[5]; /* indexed by rbe_kernel */
} rbe_kernels;

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
#endif

#endif /* RBE_EDGE_INTERNAL_H */
