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
 * Decoding with the top P planes uses the center of the codes that share
 * those P bits, which keeps truncation unbiased:
 *   c_P = ((q >> (B-P)) << (B-P)) + (2^(B-P) - 1) / 2
 * (q itself when P == B, a half integer otherwise), and the decoded value
 * is (c_P - zero) * scale. Every operation below agrees with this exactly.
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

/* Maximum threads that one call may start (its `threads` argument). */
#define RBE_MAX_THREADS 256

typedef enum rbe_status {
    RBE_OK = 0,
    RBE_ERR_NULL = 1,           /* a required pointer argument is NULL */
    RBE_ERR_SIZE = 2,           /* a size is zero or its byte count overflows */
    RBE_ERR_BITS = 3,           /* bits is outside 2..16 */
    RBE_ERR_PLANES = 4,         /* planes is outside 1..bits (or the refine range) */
    RBE_ERR_GROUP = 5,          /* group_size is zero or does not divide cols */
    RBE_ERR_CODE_RANGE = 6,     /* a code does not fit in `bits` bits */
    RBE_ERR_SCALE = 7,          /* a scale is below 2 * FLT_MIN or not finite, or a value overflows */
    RBE_ERR_ZERO = 8,           /* a zero point is not an integer in 0..2^bits-1 */
    RBE_ERR_ISA = 9,            /* the requested instruction set is not available */
    RBE_ERR_UNSUPPORTED = 10,   /* valid arguments, but the operation does not support them */
    RBE_ERR_FORMAT = 11,        /* a container is malformed: magic, offsets, shapes or sizes */
    RBE_ERR_VERSION = 12,       /* a container was written by a newer format version */
    RBE_ERR_TRUNCATED = 13,     /* a container ends before the data it declares */
    RBE_ERR_CHECKSUM = 14,      /* a CRC32C of a container chunk does not match */
    RBE_ERR_VALUE = 15,         /* a float argument is NaN, infinite or out of range */
    RBE_ERR_MEMORY = 16         /* a working buffer could not be allocated */
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
    RBE_KERNEL_GEMM_F32 = 5,
    RBE_KERNEL_UPDATE_UPPER = 6,
    RBE_KERNEL_GEMM_T_F32 = 7,
    RBE_KERNEL_DENSE_GRAD = 8,
    RBE_KERNEL_FOLD_LSB = 9
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
 *   out[r * cols + c] = (c_P - zero[r, g]) * scale[r, g]
 * with g = c / group_size, in float32. c_P - zero is exact, so the product
 * is the only rounding.
 * planes[0..planes_used-1] are read; scale and zero hold rows * groups
 * entries. Zero points must be integers in 0..2^B-1 and scales finite, at
 * least 2 * FLT_MIN, with scale * max(zero, 2^B - 1 - zero) <= FLT_MAX, so
 * that every decoded value is zero or a finite normal float.
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
 * kernels: out[r * cols + c] = c_P + h - 2^(B-1), with h = 1/2 when P < B
 * and 0 otherwise (the nearest integer above c_P). The matching zero point
 * is zero + h - 2^(B-1). Only for B <= 8.
 * Errors: RBE_ERR_NULL, RBE_ERR_PLANES, RBE_ERR_UNSUPPORTED (B > 8),
 * RBE_ERR_ISA, plus the layout checks.
 */
rbe_status rbe_decode_i8(const rbe_layout *layout, const uint8_t *const *planes,
                         unsigned planes_used, int8_t *out);

/*
 * Product y[m, n] = sum_k x[m, k] * W_P[n, k] for m < batch, read from the
 * planes, where W_P is the matrix decoded with the top `planes_used` planes
 * (see rbe_decode_f32). x is row-major [batch, cols] and y row-major
 * [batch, rows]; no float matrix of the weights is formed. Two paths, each
 * exact up to float32 rounding:
 *  - lookup: for every 4 columns, a table contains the sums of x over all
 *    16 subsets of them. Each plane adds one table entry per 4 weights,
 *    indexed by their 4 bits, so the cost grows with P times the batch.
 *  - decode: the integer codes of a few hundred columns at a time are
 *    rebuilt from the plane bits, once per 8 batch entries, and multiplied.
 *    The cost hardly depends on P.
 * The lookup path serves P = 1, P = 2 up to 4 batch entries and P = 3 for
 * one, when each group starts on a 16-column boundary (or there is one
 * group per row); it allocates 16 floats per 4 columns and batch entry for
 * the call. Everything else takes the decode path.
 *
 * Results do not depend on the ISA or the thread count: every kernel
 * accumulates in float32 in one fixed order, chosen by the layout, P and
 * the batch size (so one batch entry may round differently alone than in
 * a larger batch). Decode path: inside each group, lane j = (k - group
 * start) % 16 sets lane = fmaf(x, c_P, lane) for its columns in increasing
 * k, rounded once, where c_P = sum over p < P of bit_p * 2^(B-1-p) is the
 * code with its low B-P bits cleared; zero codes are multiplied too, so an
 * infinite or NaN x propagates as in a dense product. The 16 lanes are then
 * added pairwise (j + 8, + 4, + 2, + 1). Lookup path: table entry 2^b + i
 * is entry i + x[4 t + b], from entry 0 = +0.0 (x = 0 past the last
 * column). For each plane, four chains take the group's tables in turn
 * (table i to chain i % 4), and the plane sum is (chain 0 + chain 1) +
 * (chain 2 + chain 3). The planes join in order as sum + plane sum *
 * 2^(B-1-p). An infinite or NaN x reaches the result through the x sum
 * below. Both paths: the group adds scale * (that sum + (center offset -
 * zero) * sum of the group's x), where the center offset is
 * (2^(B-P) - 1) / 2. The x sum uses 16 lanes and the pairwise tree. Groups
 * accumulate in order. With G the group size, u = 2^-24,
 * n = ceil(G / 16) + 9 + P + groups and gamma = n u / (1 - n u), the
 * result is within
 *   2 gamma * sum over groups of scale * (sum_k |x_k| c_P,k
 *                                          + |center offset - zero| sum_k |x_k|)
 * of the exact product (tested). NOTE: this bound follows the split into
 * codes and zero point, not sum_k |x_k w_k|. When a row's zero point lies
 * far from its codes (weights of one sign, or mostly zero), the two terms
 * cancel, and a trial at K = 4096 measured 1e-5 to 5e-5 of sum_k |x_k w_k|.
 *
 * `threads` (0 or 1 means the calling thread only) splits the rows between
 * that many threads started for this call; no pool outlives the call.
 * Errors: RBE_ERR_NULL, RBE_ERR_SIZE (batch zero, or a byte count of x, y
 * or the lookup tables overflows), RBE_ERR_PLANES, RBE_ERR_SCALE,
 * RBE_ERR_ZERO, RBE_ERR_ISA, RBE_ERR_MEMORY (the lookup tables could not
 * be allocated), RBE_ERR_UNSUPPORTED (threads above 256, or threads above 1
 * on a build without threads), plus the layout checks.
 */
rbe_status rbe_gemm_f32(const rbe_layout *layout, const uint8_t *const *planes,
                        unsigned planes_used, const float *scale, const float *zero,
                        const float *x, size_t batch, float *y, unsigned threads);

/* How upper-bitplane steps turn gradients into moves. */
typedef enum rbe_update_mode {
    RBE_UPDATE_ACCUMULATE = 0,  /* int8 accumulator per weight keeps sub-step remainders */
    RBE_UPDATE_SIGN = 1         /* stateless: one step against the gradient, by chance */
} rbe_update_mode;

typedef struct rbe_update_params {
    unsigned upper_planes;      /* U, 1..B: the top planes that steps may change */
    rbe_update_mode mode;
    float learning_rate;        /* positive and finite */
    uint64_t seed;              /* stochastic rounding stream */
    uint64_t step;              /* step number; the same seed and step repeat a result */
} rbe_update_params;

/*
 * Applies one upper-bitplane step to a matrix of codes, given grad, the
 * gradient of the loss with respect to the decoded weights (row-major
 * [rows, cols], as rbe_decode_f32 writes them). A code q splits into an
 * upper part t = q >> (B-U) and a lower part; only t changes, by whole
 * steps, clamped to 0..2^U-1, so codes never wrap and planes U..B-1 are
 * never written. The wanted move in steps is
 *   d = -learning_rate * grad / (scale * 2^(B-U)).
 * RBE_UPDATE_ACCUMULATE adds d to a per-weight int8 accumulator
 * (accum[rows * cols], 128 units per step, stochastically rounded) and
 * moves t by its whole steps, keeping the rest. RBE_UPDATE_SIGN moves t
 * one step in the direction of d with probability min(|d|, 1) and keeps no
 * state (accum may be NULL). Random numbers depend only on seed, step and
 * the element index, so results repeat exactly on every ISA.
 * Errors: RBE_ERR_NULL, RBE_ERR_PLANES (upper_planes outside 1..B),
 * RBE_ERR_SCALE, RBE_ERR_VALUE (learning rate not positive and finite, or a
 * gradient NaN or infinite; nothing is written), RBE_ERR_UNSUPPORTED
 * (unknown mode), RBE_ERR_ISA, plus the layout checks.
 */
rbe_status rbe_update_upper(const rbe_layout *layout, uint8_t *const *planes,
                            const float *scale, const float *grad, int8_t *accum,
                            const rbe_update_params *params);

/*
 * Re-estimates the lower bits: folds each accumulator into its code,
 *   q += round(accum * 2^(B-U) / 128), clamped to 0..2^B-1,
 * rounding halves toward zero, and leaves in accum the remainder of at most
 * half a code, truncated to accumulator units (zero after a clamp). A second
 * call without steps in between changes nothing. All B planes may change.
 * Call it periodically and at the end of training.
 * Errors: RBE_ERR_NULL, RBE_ERR_PLANES (upper_planes outside 1..B),
 * RBE_ERR_ISA, plus the layout checks.
 */
rbe_status rbe_fold_lsb(const rbe_layout *layout, uint8_t *const *planes, int8_t *accum,
                        unsigned upper_planes);

/*
 * ---- Training a dense layer on its planes ----
 *
 * A dense layer computes y = x W_P^T (+ bias) with x [batch, cols] and
 * y [batch, rows], as rbe_gemm_f32 does. The functions below give its
 * backward pass without ever holding a float matrix of the weight's size.
 */

/*
 * Transposed product, the input gradient of a dense layer:
 *   dx[m, k] = sum_n dy[m, n] * W_P[n, k]   for m < batch,
 * with dy row-major [batch, rows] and dx row-major [batch, cols]. W_P is
 * decoded from the planes a small tile at a time (16 rows by up to 256
 * columns) and never expanded to a whole float matrix.
 *
 * Results do not depend on the ISA or the thread count: each dx[m, k]
 * starts at +0.0 and adds dy[m, n] * W_P[n, k] for n = 0..rows-1 in
 * increasing order, with W_P[n, k] the float32 value rbe_decode_f32
 * returns and each product and sum rounded to float32. That equals the
 * naive float32 loop over the decoded matrix bit for bit.
 *
 * `threads` splits the columns, in multiples of 64, as rbe_gemm_f32 splits
 * the rows.
 * Errors: as rbe_gemm_f32.
 */
rbe_status rbe_gemm_t_f32(const rbe_layout *layout, const uint8_t *const *planes,
                          unsigned planes_used, const float *scale, const float *zero,
                          const float *dy, size_t batch, float *dx, unsigned threads);

/*
 * Stores in *sum_squares the squared Frobenius norm of the weight gradient
 * G = dy^T x (G[n, k] = sum_m dy[m, n] * x[m, k], rows x cols) without
 * forming G: ||G||^2 = sum_{m, m'} (dy dy^T)[m, m'] * (x x^T)[m, m'],
 * accumulated in double and clamped at 0. Costs O(batch^2 * (rows + cols)).
 * Inputs are not checked for NaN or infinity; such an input gives a
 * result that is not finite.
 * Errors: RBE_ERR_NULL, RBE_ERR_SIZE (a size is zero or overflows).
 */
rbe_status rbe_dense_grad_sum_squares(size_t rows, size_t cols, const float *x,
                                      const float *dy, size_t batch, double *sum_squares);

/*
 * Floats of workspace that rbe_dense_update needs for `layout`: one tile
 * of the weight gradient, min(rows, 8) * cols floats, never the whole
 * matrix. Returns 0 for a NULL or invalid layout.
 */
size_t rbe_dense_update_workspace(const rbe_layout *layout);

/*
 * Applies one upper-bitplane step to a dense layer from its forward input
 * x [batch, cols] and output gradient dy [batch, rows]. The weight gradient
 *   G[n, k] = grad_scale * (sum over m = 0..batch-1 in order of dy[m, n] * x[m, k])
 * (float32: the sum starts at +0.0, each product is rounded, then added,
 * and the scaling is one more rounding) is computed one tile of rows
 * at a time into `workspace`, and each tile goes straight into the same
 * update as rbe_update_upper, so the planes and accumulator end bit for bit
 * as rbe_update_upper(layout, planes, scale, G, accum, params) would leave
 * them. `workspace` has room for rbe_dense_update_workspace(layout) floats or more.
 * With fold_lsb nonzero in accumulate mode, each row is also folded right
 * after its step, while its planes are in cache, leaving what a following
 * rbe_fold_lsb(layout, planes, accum, params->upper_planes) would leave.
 * Every plane must then be present. fold_lsb is ignored in sign mode.
 * Before any write it checks that x and dy are finite and that
 * 2 * max(1, grad_scale) * batch * max|dy| * max|x| <= FLT_MAX, so neither
 * a sum nor a gradient element can overflow, and a failed call leaves
 * planes, accum and workspace untouched.
 * Errors: those of rbe_update_upper (except the gradient checks),
 * RBE_ERR_NULL (x, dy or workspace NULL, or a plane NULL when folding), RBE_ERR_SIZE (batch zero,
 * overflow, or workspace_floats too small), RBE_ERR_VALUE (grad_scale not
 * positive and finite, x or dy not finite, or the bound above exceeded).
 */
rbe_status rbe_dense_update(const rbe_layout *layout, uint8_t *const *planes,
                            const float *scale, const float *x, const float *dy,
                            size_t batch, float grad_scale, int8_t *accum,
                            const rbe_update_params *params, int fold_lsb,
                            float *workspace, size_t workspace_floats);

/*
 * ---- Layer programs: a trainable head run by the C core ----
 *
 * A program is a chain of layers applied to rows of activations: the input
 * is x [batch, input_width] and each layer maps [batch, width_in] to
 * [batch, width_out]. rbe_program_step runs the forward pass, the loss, the
 * backward pass and one upper-bitplane step of every trainable dense layer.
 * Weight gradients are consumed tile by tile (rbe_dense_update), so the
 * extra memory of a step is the workspace: a few floats per activation,
 * never a float copy of a weight matrix.
 */

typedef enum rbe_layer_kind {
    RBE_LAYER_DENSE = 0,        /* y = x W_P^T + bias (ONNX MatMul, Gemm, MatMul + Add) */
    RBE_LAYER_RELU = 1,
    RBE_LAYER_GELU = 2,         /* x * Phi(x) with the exact erf */
    RBE_LAYER_GELU_TANH = 3,    /* the tanh approximation of GELU */
    RBE_LAYER_TANH = 4,
    RBE_LAYER_LAYER_NORM = 5    /* over the last axis, as ONNX LayerNormalization */
} rbe_layer_kind;

typedef enum rbe_loss_kind {
    RBE_LOSS_CROSS_ENTROPY = 0, /* softmax cross-entropy, mean over rows */
    RBE_LOSS_MSE = 1            /* mean over all elements of (y - target)^2 */
} rbe_loss_kind;

/*
 * Per-tensor gradient scaling: the gradient is divided by the root of a
 * bias-corrected running mean of its mean square (Adam's second moment kept
 * per tensor). Start with mean_square 0 and steps 0.
 */
typedef struct rbe_rms_scaling {
    double mean_square;
    double decay;               /* in [0, 1) */
    uint64_t steps;
} rbe_rms_scaling;

typedef struct rbe_layer {
    rbe_layer_kind kind;
    /* RBE_LAYER_DENSE: the weight matrix is layout->rows x layout->cols. */
    const rbe_layout *layout;
    uint8_t *const *planes;     /* layout->bits planes; written when trainable */
    unsigned planes_used;       /* planes read by the products; bits when trainable */
    const float *scale;
    const float *zero;
    const float *bias;          /* layout->rows floats, or NULL */
    int trainable;              /* nonzero: one upper-bitplane step per rbe_program_step */
    int8_t *accum;              /* rows * cols for RBE_UPDATE_ACCUMULATE, else NULL */
    rbe_rms_scaling *scaling;   /* NULL: the plain gradient */
    /* RBE_LAYER_LAYER_NORM: width floats each; epsilon positive and finite. */
    size_t width;
    const float *gamma;
    const float *beta;          /* NULL: no bias */
    float epsilon;
} rbe_layer;

typedef struct rbe_program {
    const rbe_layer *layers;
    size_t layer_count;         /* 1..256 */
    size_t input_width;
    rbe_loss_kind loss;
} rbe_program;

/*
 * Validates a program (widths chain, pointers, parameters) and stores the
 * output width in *output_width. On the first error it sets *failed_layer
 * to the failing layer's index, or to layer_count for the program itself.
 * Errors: RBE_ERR_NULL, RBE_ERR_SIZE (a width does not match the previous
 * layer's output, or no layers), RBE_ERR_UNSUPPORTED (unknown kind or loss,
 * or a trainable dense layer that reads fewer than all planes),
 * RBE_ERR_VALUE (bad epsilon or decay), plus the layout checks.
 */
rbe_status rbe_program_check(const rbe_program *program, size_t *output_width,
                             size_t *failed_layer);

/*
 * Stores in *floats the workspace that rbe_program_forward and
 * rbe_program_step need for `batch` rows.
 * Errors: those of rbe_program_check, RBE_ERR_SIZE (batch zero or overflow).
 */
rbe_status rbe_program_workspace(const rbe_program *program, size_t batch, size_t *floats);

/*
 * Runs the forward pass: y [batch, output_width] from x [batch, input_width].
 * Errors: those of rbe_program_workspace, RBE_ERR_SIZE (workspace_floats
 * too small), and those of the products.
 */
rbe_status rbe_program_forward(const rbe_program *program, const float *x, size_t batch,
                               float *y, float *workspace, size_t workspace_floats,
                               unsigned threads);

/*
 * Runs one training step on `batch` rows and stores the mean loss in *loss.
 * Cross-entropy reads classes[batch] (each in 0..output_width-1); MSE reads
 * targets[batch * output_width]. Every gradient is computed before any
 * plane changes, then each trainable layer takes one step with `params`
 * (its step and seed are used as given), folded into the lower planes
 * when fold_lsb is nonzero (see rbe_dense_update). A
 * non-finite loss or gradient
 * returns RBE_ERR_VALUE with the planes, accumulators and scaling states
 * untouched.
 * Errors: those of rbe_program_forward, RBE_ERR_NULL (labels missing),
 * RBE_ERR_VALUE (a class out of range, or a non-finite loss or gradient),
 * and those of rbe_dense_update.
 */
rbe_status rbe_program_step(const rbe_program *program, const float *x, size_t batch,
                            const int64_t *classes, const float *targets,
                            const rbe_update_params *params, int fold_lsb, float *loss,
                            float *workspace, size_t workspace_floats, unsigned threads);

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

/*
 * ---- Container reader (model.rbe) ----
 *
 * model.rbe holds the packed weights of a whole model in plane-major order:
 * a 64-byte header, a tensor table, the scales and zero points of every
 * tensor, then plane 0 of every tensor, plane 1 of every tensor, and so on.
 * Every chunk starts on a 64-byte boundary and has its own CRC32C. A prefix
 * of the file that ends at plane_end[P-1] is a valid model with P planes.
 * docs/format.md specifies the bytes. The reader works on a caller-owned
 * buffer (typically a memory-mapped file) and never copies or allocates.
 */

typedef struct rbe_container {
    const uint8_t *data;        /* the caller's buffer: the file or a prefix of it */
    size_t size;                /* bytes available in data */
    uint32_t version;           /* format version, 1 */
    uint32_t tensor_count;
    uint32_t max_bits;          /* largest B of any tensor; 0 when there are no tensors */
    uint32_t planes_available;  /* planes (P) fully present in the buffer */
    uint64_t file_size;         /* size of the complete file, every plane included */
    uint64_t data_offset;       /* first byte of the scale and zero point chunks */
    uint64_t plane_end[16];     /* plane_end[p]: bytes needed for planes 0..p */
} rbe_container;

typedef struct rbe_container_tensor {
    const char *name;           /* UTF-8, not NUL-terminated, points into the buffer */
    size_t name_len;
    uint32_t ndim;              /* 1..4 */
    uint32_t layout;            /* 0 = kn, 1 = nk, 2 = vector */
    uint64_t shape[4];          /* unused dimensions are 0 */
    uint32_t bits;              /* B of this tensor, 2..16 */
    uint32_t params_crc;
    uint64_t rows;
    uint64_t cols;
    uint64_t group_size;
    uint64_t params_offset;     /* scale[rows * groups] float32, then zero[rows * groups] */
    uint64_t plane_bytes;       /* rows * row_stride, the size of one plane chunk */
    uint64_t plane_offset[16];  /* file offset of each plane chunk; 0 for p >= bits */
    uint32_t plane_crc[16];
} rbe_container_tensor;

/*
 * Updates *crc with the CRC32C (Castagnoli) of data[0..size-1]. Start with
 * *crc = 0; feeding a buffer in pieces gives the same result as in one call.
 * Errors: RBE_ERR_NULL (crc NULL, or data NULL with size > 0).
 */
rbe_status rbe_crc32c(const void *data, size_t size, uint32_t *crc);

/*
 * Parses and validates the header and tensor table of a container held in
 * data[0..size-1], which may be a prefix of the file that ends on a plane
 * boundary. Checks magic, version, the header and table CRC32Cs, shapes,
 * layouts, bit widths, alignment, and that every chunk lies inside the file
 * with no overlap, in plane-major order. Chunk CRCs are checked by
 * rbe_container_verify. On failure *container is left zeroed.
 * Errors: RBE_ERR_NULL, RBE_ERR_TRUNCATED (the header, the table, the
 * scales or plane 0 are cut off, or the prefix does not end on a plane
 * boundary), RBE_ERR_FORMAT, RBE_ERR_VERSION, RBE_ERR_CHECKSUM.
 */
rbe_status rbe_container_open(rbe_container *container, const uint8_t *data, size_t size);

/*
 * Fills *tensor with entry `index` of an opened container's table.
 * Errors: RBE_ERR_NULL, RBE_ERR_SIZE (index >= tensor_count).
 */
rbe_status rbe_container_tensor_info(const rbe_container *container, uint32_t index,
                                     rbe_container_tensor *tensor);

/*
 * Checks the CRC32C of every scale/zero chunk and of planes 0..planes-1 of
 * every tensor (a tensor with fewer bits is checked up to its bits).
 * Errors: RBE_ERR_NULL, RBE_ERR_PLANES (planes outside 1..planes_available),
 * RBE_ERR_CHECKSUM.
 */
rbe_status rbe_container_verify(const rbe_container *container, uint32_t planes);

/*
 * Points plane_ptrs[0..used-1], *scale and *zero into the buffer for entry
 * `index`, with used = min(planes, bits), and fills *layout so the result
 * can be passed to rbe_decode_f32. The float arrays are 4-byte aligned
 * when the buffer is. plane_ptrs must hold 16 entries.
 * Errors: RBE_ERR_NULL, RBE_ERR_SIZE (bad index), RBE_ERR_PLANES (planes
 * outside 1..planes_available).
 */
rbe_status rbe_container_tensor_data(const rbe_container *container, uint32_t index,
                                     uint32_t planes, rbe_layout *layout,
                                     const uint8_t **plane_ptrs, const float **scale,
                                     const float **zero);

/* RBE_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* RBE_EDGE_H */
