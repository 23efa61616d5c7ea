/*
 * rbe_edge C core: bitplane weight codec.
 *
 * A weight tensor is a matrix of `rows` output channels by `cols` reduction
 * columns (K). Each element holds an unsigned B-bit code q, and its value is
 * scale * (q - zero), with one scale and one zero point per row or per group
 * of `group_size` columns. Bitplane p (0 <= p < B) holds bit B-1-p of every
 * code, so plane 0 is the most significant. Inside a plane, row r starts at
 * byte r * row_stride, and column c is bit (c % 8) of byte c / 8 of that row.
 * Bits past `cols` are zero padding.
 *
 * Decoding with the top P planes uses the midpoint of the truncated interval:
 *   q_P = ((q >> (B-P)) << (B-P)) + (P < B ? 2^(B-P-1) : 0)
 * and every operation below agrees with this formula exactly.
 *
 * Every function returns an rbe_status and checks its arguments before it
 * writes anything, so a call that fails leaves its outputs untouched. The
 * library holds no mutable global state; all functions are thread-safe.
 *
 * The region between the CDEF markers is plain C that the Python build
 * (cffi) reads as the ABI declaration; keep preprocessor lines out of it.
 */
#ifndef RBE_EDGE_H
#define RBE_EDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* RBE_CDEF_BEGIN */

typedef enum rbe_status {
    RBE_OK = 0,
    RBE_ERR_NULL = 1,           /* a required pointer argument is NULL */
    RBE_ERR_SIZE = 2,           /* a size is zero or its byte count overflows */
    RBE_ERR_BITS = 3,           /* bits is outside 2..16 */
    RBE_ERR_PLANES = 4,         /* planes is outside 1..bits (or the refine range) */
    RBE_ERR_GROUP = 5,          /* group_size is zero or does not divide cols */
    RBE_ERR_CODE_RANGE = 6,     /* a code does not fit in `bits` bits */
    RBE_ERR_SCALE = 7,          /* a scale is not a positive normal float, or a value overflows */
    RBE_ERR_ZERO = 8,           /* a zero point is not an integer in 0..2^bits-1 */
    RBE_ERR_ISA = 9,            /* the requested instruction set is not available */
    RBE_ERR_UNSUPPORTED = 10    /* valid arguments, but the operation does not support them */
} rbe_status;

/* Kernel families. RBE_ISA_AUTO picks the fastest one the CPU supports. */
typedef enum rbe_isa {
    RBE_ISA_AUTO = 0,
    RBE_ISA_SCALAR = 1,
    RBE_ISA_AVX2 = 2,
    RBE_ISA_NEON = 3,
    RBE_ISA_AVX512 = 4
} rbe_isa;

/* Operations whose kernel is chosen at run time. */
typedef enum rbe_kernel {
    RBE_KERNEL_ENCODE = 0,
    RBE_KERNEL_UNPACK = 1,
    RBE_KERNEL_DEQUANT_F32 = 2,
    RBE_KERNEL_REFINE_F32 = 3,
    RBE_KERNEL_DEQUANT_I8 = 4,
    RBE_KERNEL_GEMM_F32 = 5
} rbe_kernel;

/*
 * Shape and packing of one weight matrix. Fill it with rbe_layout_init;
 * afterwards only `isa` may be changed by the caller.
 */
typedef struct rbe_layout {
    size_t rows;          /* output channels */
    size_t cols;          /* reduction columns (K) */
    size_t group_size;    /* columns sharing one scale and zero; cols for per-row */
    size_t groups;        /* cols / group_size: scale and zero entries per row */
    size_t row_stride;    /* bytes per row inside one plane, a multiple of 8 */
    size_t plane_bytes;   /* rows * row_stride */
    unsigned bits;        /* B, 2..16 */
    rbe_isa isa;          /* kernel family to run; RBE_ISA_AUTO by default */
} rbe_layout;

/*
 * Returns a static English description of a status code. Unknown codes get
 * a generic message; the result is never NULL.
 */
const char *rbe_status_message(rbe_status status);

/*
 * Initializes `layout` for a rows x cols matrix of `bits`-bit codes with one
 * scale and zero per `group_size` columns. group_size 0 means per-row
 * (group_size = cols). row_stride rounds ceil(cols / 8) up to a multiple of 8
 * bytes so that kernels may load whole 64-bit words of a row.
 * Errors: RBE_ERR_NULL, RBE_ERR_SIZE (rows or cols zero, or rows * cols
 * elements of 4 bytes or the plane bytes overflow size_t), RBE_ERR_BITS,
 * RBE_ERR_GROUP.
 */
rbe_status rbe_layout_init(rbe_layout *layout, size_t rows, size_t cols,
                           unsigned bits, size_t group_size);

/*
 * Packs codes[rows * cols] (row-major, uint16) into the B planes
 * planes[0..B-1], each at least layout->plane_bytes long. Padding bits are
 * written as zero.
 * Errors: RBE_ERR_NULL, RBE_ERR_CODE_RANGE (some code >= 2^B; nothing is
 * written), RBE_ERR_ISA, plus the layout checks.
 */
rbe_status rbe_encode(const rbe_layout *layout, const uint16_t *codes,
                      uint8_t *const *planes);

/*
 * Decodes the top `planes_used` planes to float32:
 *   out[r * cols + c] = (float)(q_P - zero[r, g]) * scale[r, g]
 * with g = c / group_size, evaluated in float32 without fused multiply-add.
 * planes[0..planes_used-1] are read; scale and zero hold rows * groups
 * entries. Zero points must be integers in 0..2^B-1 and scales positive
 * normal floats with scale * max(zero, 2^B - 1 - zero) <= FLT_MAX, so that
 * every decoded value is finite.
 * Errors: RBE_ERR_NULL, RBE_ERR_PLANES, RBE_ERR_SCALE, RBE_ERR_ZERO,
 * RBE_ERR_ISA, plus the layout checks.
 */
rbe_status rbe_decode_f32(const rbe_layout *layout, const uint8_t *const *planes,
                          unsigned planes_used, const float *scale,
                          const float *zero, float *out);

/*
 * Refines, in place, a buffer decoded by rbe_decode_f32 with `planes_used`
 * planes into the result of decoding with planes_used + 1 planes, reading
 * only `next_plane` (plane index planes_used). The result equals a fresh
 * decode bit for bit. A buffer that was not decoded with `planes_used`
 * planes of the same scale and zero gives unspecified values, never a crash.
 * Errors: RBE_ERR_NULL, RBE_ERR_PLANES (planes_used outside 1..B-1),
 * RBE_ERR_SCALE, RBE_ERR_ZERO, RBE_ERR_ISA, plus the layout checks.
 */
rbe_status rbe_refine_f32(const rbe_layout *layout, const uint8_t *next_plane,
                          unsigned planes_used, const float *scale,
                          const float *zero, float *inout);

/*
 * Decodes the top `planes_used` planes to signed 8-bit codes for integer
 * kernels: out[r * cols + c] = q_P - 2^(B-1), so the matching zero point is
 * zero - 2^(B-1). Only for B <= 8.
 * Errors: RBE_ERR_NULL, RBE_ERR_PLANES, RBE_ERR_UNSUPPORTED (B > 8),
 * RBE_ERR_ISA, plus the layout checks.
 */
rbe_status rbe_decode_i8(const rbe_layout *layout, const uint8_t *const *planes,
                         unsigned planes_used, int8_t *out);

/*
 * Bit-serial product y[m, n] = sum_k x[m, k] * W_P[n, k] for m < batch, where
 * W_P is the matrix decoded with the top `planes_used` planes (see
 * rbe_decode_f32). x is row-major [batch, cols] and y row-major
 * [batch, rows]; the weights are never expanded to floats. Work grows
 * linearly with planes_used: each plane adds the activations whose bit is
 * set, scaled by that plane's power of two.
 *
 * Results do not depend on the ISA or the thread count: every kernel
 * accumulates in float32 in one fixed order. Inside each group, lane
 * j = (k - group start) % 16 sums its columns in increasing k, for each
 * column plane by plane, adding x * 2^(B-1-p) where the bit is set; the 16
 * lanes are then added pairwise (j + 8, + 4, + 2, + 1), the group adds
 * scale * (that sum + (midpoint - zero) * sum of the group's x), and groups
 * accumulate in order. The error against exact arithmetic is that of
 * float32 summation of about K / 16 + 4 terms per lane chain.
 *
 * `threads` (0 or 1 means the calling thread only) splits the rows between
 * that many threads started for this call; no pool outlives the call.
 * Errors: RBE_ERR_NULL, RBE_ERR_SIZE (batch zero or batch * cols or
 * batch * rows overflows), RBE_ERR_PLANES, RBE_ERR_SCALE, RBE_ERR_ZERO,
 * RBE_ERR_ISA, RBE_ERR_UNSUPPORTED (threads above 256, or threads above 1
 * on a build without threads), plus the layout checks.
 */
rbe_status rbe_gemm_f32(const rbe_layout *layout, const uint8_t *const *planes,
                        unsigned planes_used, const float *scale, const float *zero,
                        const float *x, size_t batch, float *y, unsigned threads);

/*
 * Reports the kernel family that RBE_ISA_AUTO selects on this CPU.
 * Errors: RBE_ERR_NULL.
 */
rbe_status rbe_selected_isa(rbe_isa *isa);

/*
 * Reports whether `isa` can run on this CPU (1) or not (0).
 * Errors: RBE_ERR_NULL, RBE_ERR_ISA (not a known rbe_isa value).
 */
rbe_status rbe_isa_available(rbe_isa isa, int *available);

/*
 * Stores in *name the name of the kernel that runs `kernel` for `isa`
 * (RBE_ISA_AUTO for the automatic choice), for example "unpack_avx2".
 * The string is static.
 * Errors: RBE_ERR_NULL, RBE_ERR_ISA (unknown or unavailable isa),
 * RBE_ERR_UNSUPPORTED (unknown kernel).
 */
rbe_status rbe_kernel_name(rbe_kernel kernel, rbe_isa isa, const char **name);

/* RBE_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* RBE_EDGE_H */
