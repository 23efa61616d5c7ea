/*
 * rbe_program_step: forward, loss, backward, then one upper-bitplane step
 * of every trainable dense layer. Backward finishes, and every gradient is
 * checked, before the first plane changes, so a failed step writes nothing
 * and each layer's input gradient uses the weights of before the step.
 */
#include <float.h>
#include <math.h>

#include "program_internal.h"

/* Added to each mean square, as the Python RmsScaling does. */
#define RBE_RMS_EPSILON 1e-12

/* What a trainable layer will apply once every check has passed. */
typedef struct pending_update {
    float grad_scale;
    double mean_square;     /* the scaling state after this step */
} pending_update;

static size_t first_trainable(const rbe_program *program)
{
    for (size_t i = 0; i < program->layer_count; i++) {
        if (program->layers[i].kind == RBE_LAYER_DENSE && program->layers[i].trainable) {
            return i;
        }
    }
    return program->layer_count;
}

static rbe_status check_update_params(const rbe_program *program,
                                      const rbe_update_params *params)
{
    if (params->mode != RBE_UPDATE_ACCUMULATE && params->mode != RBE_UPDATE_SIGN) {
        return RBE_ERR_UNSUPPORTED;
    }
    if (!(params->learning_rate > 0.0f && params->learning_rate <= FLT_MAX)) {
        return RBE_ERR_VALUE;
    }
    for (size_t i = 0; i < program->layer_count; i++) {
        const rbe_layer *layer = &program->layers[i];
        if (layer->kind != RBE_LAYER_DENSE || !layer->trainable) {
            continue;
        }
        if (params->upper_planes < 1 || params->upper_planes > layer->layout->bits) {
            return RBE_ERR_PLANES;
        }
        if (params->mode == RBE_UPDATE_ACCUMULATE && layer->accum == NULL) {
            return RBE_ERR_NULL;
        }
    }
    return RBE_OK;
}

static rbe_status check_labels(rbe_loss_kind loss, const int64_t *classes,
                               const float *targets, size_t batch, size_t output_width)
{
    if (loss == RBE_LOSS_MSE) {
        return targets == NULL ? RBE_ERR_NULL : RBE_OK;
    }
    if (classes == NULL) {
        return RBE_ERR_NULL;
    }
    for (size_t row = 0; row < batch; row++) {
        if (classes[row] < 0 || (uint64_t)classes[row] >= output_width) {
            return RBE_ERR_VALUE;
        }
    }
    return RBE_OK;
}

static const float *layer_input(const workspace_plan *plan, const float *x, size_t i,
                                const float *workspace)
{
    return i == 0 ? x : workspace + plan->outputs[i];
}

static rbe_status backward_layer(const rbe_layer *layer, const float *input,
                                 const float *output, const float *grad_output,
                                 const float *stats, size_t batch, size_t width_in,
                                 float *grad_input, unsigned threads)
{
    if (layer->kind == RBE_LAYER_DENSE) {
        return rbe_gemm_t_f32(layer->layout, (const uint8_t *const *)layer->planes,
                              layer->planes_used, layer->scale, layer->zero, grad_output,
                              batch, grad_input, threads);
    }
    if (layer->kind == RBE_LAYER_LAYER_NORM) {
        rbe_layer_norm_backward(layer, input, stats, grad_output, batch, grad_input);
        return RBE_OK;
    }
    rbe_activation_backward(layer->kind, input, output, grad_output, batch * width_in,
                            grad_input);
    return RBE_OK;
}

/* Propagates the loss gradient down to the input of layer `first`. */
static rbe_status run_backward(const rbe_program *program, const workspace_plan *plan,
                               const float *x, size_t batch, size_t first, float *workspace,
                               unsigned threads)
{
    size_t widths[RBE_MAX_LAYERS + 1];

    widths[0] = program->input_width;
    for (size_t i = 0; i < program->layer_count; i++) {
        widths[i + 1] = rbe_layer_output_width(&program->layers[i], widths[i]);
    }

    for (size_t i = program->layer_count; i-- > first + 1;) {
        const rbe_layer *layer = &program->layers[i];
        rbe_status status = backward_layer(
            layer, layer_input(plan, x, i, workspace), workspace + plan->outputs[i + 1],
            workspace + plan->grads[i + 1], workspace + plan->stats[i], batch, widths[i],
            workspace + plan->grads[i], threads);
        if (status != RBE_OK) {
            return status;
        }
    }
    return RBE_OK;
}

/*
 * Stores the squared norm of a layer's weight gradient. The Gram identity
 * costs batch^2 * (rows + cols), and recomputing the gradient tile by tile
 * costs batch * rows * cols, so the cheaper one runs. With the many rows of
 * a token head (batch * tokens), the Gram matrices would be the slowest part.
 */
static rbe_status gradient_sum_squares(const rbe_layer *layer, const float *input,
                                       const float *grad_output, size_t batch, float *tile,
                                       double *sum_squares)
{
    size_t rows = layer->layout->rows;
    size_t cols = layer->layout->cols;

    if ((double)batch * ((double)rows + (double)cols) <= (double)rows * (double)cols) {
        return rbe_dense_grad_sum_squares(rows, cols, input, grad_output, batch, sum_squares);
    }

    const rbe_kernels *kernels = rbe_kernels_for(layer->layout->isa);
    if (kernels == NULL) {
        return RBE_ERR_ISA;
    }
    rbe_dense_grad_args grad = {input, grad_output, rows, cols, batch, 1.0f};
    size_t step = rbe_dense_update_workspace(layer->layout) / cols;
    double total = 0.0;
    for (size_t row = 0; row < rows; row += step) {
        size_t count = rows - row < step ? rows - row : step;
        kernels->dense_grad(&grad, row, count, tile);
        for (size_t i = 0; i < count * cols; i++) {
            total += (double)tile[i] * tile[i];
        }
    }
    *sum_squares = total;
    return RBE_OK;
}

/*
 * Computes the gradient scale of one trainable layer and checks, with twice
 * the margin that rbe_dense_update requires, that no gradient element can
 * overflow.
 */
static rbe_status plan_update(const rbe_layer *layer, const float *input,
                              const float *grad_output, size_t batch, float *tile,
                              pending_update *pending)
{
    size_t rows = layer->layout->rows;
    size_t cols = layer->layout->cols;
    float largest_input;
    float largest_grad;

    if (!rbe_max_abs_finite(input, batch * cols, &largest_input) ||
        !rbe_max_abs_finite(grad_output, batch * rows, &largest_grad)) {
        return RBE_ERR_VALUE;
    }

    pending->grad_scale = 1.0f;
    if (layer->scaling != NULL) {
        const rbe_rms_scaling *scaling = layer->scaling;
        double sum_squares;
        rbe_status status = gradient_sum_squares(layer, input, grad_output, batch, tile,
                                                 &sum_squares);
        if (status != RBE_OK) {
            return status;
        }
        double square = sum_squares / ((double)rows * (double)cols) + RBE_RMS_EPSILON;
        double steps = (double)scaling->steps + 1.0;
        pending->mean_square = scaling->decay * scaling->mean_square +
                               (1.0 - scaling->decay) * square;
        double estimate = pending->mean_square / (1.0 - pow(scaling->decay, steps));
        pending->grad_scale = (float)(1.0 / sqrt(estimate));
    }

    double bound = 4.0 * pending->grad_scale * (double)batch * largest_grad * largest_input;
    if (!(pending->grad_scale > 0.0f && pending->grad_scale <= FLT_MAX) || !(bound <= FLT_MAX)) {
        return RBE_ERR_VALUE;
    }
    return RBE_OK;
}

static rbe_status plan_updates(const rbe_program *program, const workspace_plan *plan,
                               const float *x, size_t batch, float *workspace,
                               pending_update *pending)
{
    for (size_t i = 0; i < program->layer_count; i++) {
        const rbe_layer *layer = &program->layers[i];
        if (layer->kind != RBE_LAYER_DENSE || !layer->trainable) {
            continue;
        }
        rbe_status status = plan_update(layer, layer_input(plan, x, i, workspace),
                                        workspace + plan->grads[i + 1], batch,
                                        workspace + plan->tile, &pending[i]);
        if (status != RBE_OK) {
            return status;
        }
    }
    return RBE_OK;
}

static rbe_status apply_updates(const rbe_program *program, const workspace_plan *plan,
                                const float *x, size_t batch, const rbe_update_params *params,
                                int fold_lsb, const pending_update *pending, float *workspace)
{
    for (size_t i = 0; i < program->layer_count; i++) {
        const rbe_layer *layer = &program->layers[i];
        if (layer->kind != RBE_LAYER_DENSE || !layer->trainable) {
            continue;
        }
        rbe_status status = rbe_dense_update(
            layer->layout, layer->planes, layer->scale, layer_input(plan, x, i, workspace),
            workspace + plan->grads[i + 1], batch, pending[i].grad_scale, layer->accum, params,
            fold_lsb, workspace + plan->tile, plan->total - plan->tile);
        if (status != RBE_OK) {
            return status;
        }
        if (layer->scaling != NULL) {
            layer->scaling->mean_square = pending[i].mean_square;
            layer->scaling->steps++;
        }
    }
    return RBE_OK;
}

static double compute_loss(const rbe_program *program, const float *outputs,
                           const int64_t *classes, const float *targets, size_t batch,
                           size_t width, float *grad)
{
    if (program->loss == RBE_LOSS_CROSS_ENTROPY) {
        return rbe_cross_entropy(outputs, classes, batch, width, grad);
    }
    return rbe_mean_squared_error(outputs, targets, batch, width, grad);
}

static rbe_status check_step_arguments(const rbe_program *program, const float *x,
                                       size_t batch, const int64_t *classes,
                                       const float *targets, const rbe_update_params *params,
                                       const float *loss, const float *workspace,
                                       size_t workspace_floats, workspace_plan *plan,
                                       size_t *output_width)
{
    size_t failed_layer;

    if (x == NULL || params == NULL || loss == NULL || workspace == NULL) {
        return RBE_ERR_NULL;
    }
    rbe_status status = rbe_program_prepare(program, batch, plan, output_width, &failed_layer);
    if (status != RBE_OK) {
        return status;
    }
    if (workspace_floats < plan->total) {
        return RBE_ERR_SIZE;
    }
    status = check_update_params(program, params);
    if (status != RBE_OK) {
        return status;
    }
    return check_labels(program->loss, classes, targets, batch, *output_width);
}

rbe_status rbe_program_step(const rbe_program *program, const float *x, size_t batch,
                            const int64_t *classes, const float *targets,
                            const rbe_update_params *params, int fold_lsb, float *loss,
                            float *workspace, size_t workspace_floats, unsigned threads)
{
    workspace_plan plan;
    pending_update pending[RBE_MAX_LAYERS];
    size_t width;

    rbe_status status = check_step_arguments(program, x, batch, classes, targets, params, loss,
                                             workspace, workspace_floats, &plan, &width);
    if (status != RBE_OK) {
        return status;
    }
    status = rbe_program_run_forward(program, &plan, x, batch, workspace, threads);
    if (status != RBE_OK) {
        return status;
    }

    size_t last = program->layer_count;
    double value = compute_loss(program, workspace + plan.outputs[last], classes, targets,
                                batch, width, workspace + plan.grads[last]);
    if (!isfinite(value)) {
        return RBE_ERR_VALUE;
    }

    size_t first = first_trainable(program);
    if (first < program->layer_count) {
        status = run_backward(program, &plan, x, batch, first, workspace, threads);
        if (status == RBE_OK) {
            status = plan_updates(program, &plan, x, batch, workspace, pending);
        }
        if (status == RBE_OK) {
            status = apply_updates(program, &plan, x, batch, params, fold_lsb, pending,
                                   workspace);
        }
    }
    if (status == RBE_OK) {
        *loss = (float)value;
    }
    return status;
}
