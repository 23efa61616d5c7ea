/*
 * Declarations shared by the layer-program files: the row-wise layers
 * (layers.c), the losses (loss.c) and the driver (program.c).
 */
#ifndef RBE_EDGE_PROGRAM_INTERNAL_H
#define RBE_EDGE_PROGRAM_INTERNAL_H

#include "internal.h"

#define RBE_MAX_LAYERS 256

/* Offsets into the workspace, in floats. Entry i + 1 of outputs and grads
 * belongs to the output of layer i; entry 0 is the program input, which
 * the caller owns. */
typedef struct workspace_plan {
    size_t outputs[RBE_MAX_LAYERS + 1];
    size_t grads[RBE_MAX_LAYERS + 1];
    size_t stats[RBE_MAX_LAYERS];
    size_t tile;
    size_t total;
} workspace_plan;

/* Output width of a layer that rbe_program_check accepted. */
size_t rbe_layer_output_width(const rbe_layer *layer, size_t width_in);

/* Checks the program and batch, then plans the workspace. */
rbe_status rbe_program_prepare(const rbe_program *program, size_t batch,
                               workspace_plan *plan, size_t *output_width,
                               size_t *failed_layer);

/* Runs every layer; the output of layer i lands at workspace + plan->outputs[i + 1]. */
rbe_status rbe_program_run_forward(const rbe_program *program, const workspace_plan *plan,
                                   const float *x, size_t batch, float *workspace,
                                   unsigned threads);

/* For RBE_LAYER_RELU, GELU, GELU_TANH and TANH, elementwise. */
void rbe_activation_forward(rbe_layer_kind kind, const float *input, size_t count,
                            float *output);
void rbe_activation_backward(rbe_layer_kind kind, const float *input, const float *output,
                             const float *grad_output, size_t count, float *grad_input);

/* stats has 2 floats per row: the mean and the reciprocal standard deviation. */
void rbe_layer_norm_forward(const rbe_layer *layer, const float *input, size_t batch,
                            float *output, float *stats);
void rbe_layer_norm_backward(const rbe_layer *layer, const float *input, const float *stats,
                             const float *grad_output, size_t batch, float *grad_input);

/*
 * Computes the mean loss over `batch` rows of `width` outputs and its
 * gradient with respect to the outputs. Classes must already be checked to
 * lie in 0..width-1.
 */
double rbe_cross_entropy(const float *logits, const int64_t *classes, size_t batch,
                         size_t width, float *grad);
double rbe_mean_squared_error(const float *outputs, const float *targets, size_t batch,
                              size_t width, float *grad);

#endif /* RBE_EDGE_PROGRAM_INTERNAL_H */
