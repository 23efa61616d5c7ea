/*
 * Layer programs: validation, workspace planning and the forward pass
 * (program_step.c has the training step). The workspace contains every
 * layer's output and the gradient with respect to it (batch * width floats
 * each), two floats per row for each layer normalization, and one
 * weight-gradient tile for rbe_dense_update. Nothing the size of a weight
 * matrix is allocated.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "program_internal.h"

static int is_activation(rbe_layer_kind kind)
{
    return kind == RBE_LAYER_RELU || kind == RBE_LAYER_GELU ||
           kind == RBE_LAYER_GELU_TANH || kind == RBE_LAYER_TANH;
}

static rbe_status check_dense(const rbe_layer *layer, size_t width_in, size_t *width_out)
{
    if (layer->layout == NULL || layer->planes == NULL || layer->scale == NULL ||
        layer->zero == NULL) {
        return RBE_ERR_NULL;
    }
    rbe_status status = rbe_layout_check(layer->layout);
    if (status != RBE_OK) {
        return status;
    }
    if (layer->layout->cols != width_in) {
        return RBE_ERR_SIZE;
    }
    if (layer->planes_used < 1 || layer->planes_used > layer->layout->bits) {
        return RBE_ERR_PLANES;
    }
    if (layer->trainable && layer->planes_used != layer->layout->bits) {
        return RBE_ERR_UNSUPPORTED;
    }

    unsigned planes_read = layer->trainable ? layer->layout->bits : layer->planes_used;
    for (unsigned p = 0; p < planes_read; p++) {
        if (layer->planes[p] == NULL) {
            return RBE_ERR_NULL;
        }
    }
    if (layer->trainable && layer->scaling != NULL &&
        !(layer->scaling->decay >= 0.0 && layer->scaling->decay < 1.0)) {
        return RBE_ERR_VALUE;
    }
    *width_out = layer->layout->rows;
    return rbe_check_scale_zero(layer->layout, layer->scale, layer->zero);
}

static rbe_status check_layer_norm(const rbe_layer *layer, size_t width_in)
{
    if (layer->gamma == NULL) {
        return RBE_ERR_NULL;
    }
    if (layer->width != width_in) {
        return RBE_ERR_SIZE;
    }
    if (!(layer->epsilon > 0.0f && layer->epsilon <= FLT_MAX)) {
        return RBE_ERR_VALUE;
    }
    return RBE_OK;
}

static rbe_status check_layer(const rbe_layer *layer, size_t width_in, size_t *width_out)
{
    *width_out = width_in;
    if (layer->kind == RBE_LAYER_DENSE) {
        return check_dense(layer, width_in, width_out);
    }
    if (layer->kind == RBE_LAYER_LAYER_NORM) {
        return check_layer_norm(layer, width_in);
    }
    return is_activation(layer->kind) ? RBE_OK : RBE_ERR_UNSUPPORTED;
}

rbe_status rbe_program_check(const rbe_program *program, size_t *output_width,
                             size_t *failed_layer)
{
    if (program == NULL || output_width == NULL || failed_layer == NULL) {
        return RBE_ERR_NULL;
    }
    *failed_layer = program->layer_count;
    if (program->layers == NULL) {
        return RBE_ERR_NULL;
    }
    if (program->layer_count == 0 || program->layer_count > RBE_MAX_LAYERS ||
        program->input_width == 0) {
        return RBE_ERR_SIZE;
    }
    if (program->loss != RBE_LOSS_CROSS_ENTROPY && program->loss != RBE_LOSS_MSE) {
        return RBE_ERR_UNSUPPORTED;
    }

    size_t width = program->input_width;
    for (size_t i = 0; i < program->layer_count; i++) {
        rbe_status status = check_layer(&program->layers[i], width, &width);
        if (status != RBE_OK) {
            *failed_layer = i;
            return status;
        }
    }
    *output_width = width;
    return RBE_OK;
}

/* Adds `count` floats to plan->total; returns 0 on overflow. */
static int reserve(workspace_plan *plan, size_t count, size_t *offset)
{
    if (count > SIZE_MAX / sizeof(float) - plan->total) {
        return 0;
    }
    *offset = plan->total;
    plan->total += count;
    return 1;
}

size_t rbe_layer_output_width(const rbe_layer *layer, size_t width_in)
{
    return layer->kind == RBE_LAYER_DENSE ? layer->layout->rows : width_in;
}

/* Fills *plan for a program that rbe_program_check accepted. */
static rbe_status plan_workspace(const rbe_program *program, size_t batch,
                                 workspace_plan *plan)
{
    size_t width = program->input_width;
    size_t tile = 0;

    memset(plan, 0, sizeof(*plan));
    for (size_t i = 0; i < program->layer_count; i++) {
        const rbe_layer *layer = &program->layers[i];
        width = rbe_layer_output_width(layer, width);
        if (width > SIZE_MAX / batch ||
            !reserve(plan, width * batch, &plan->outputs[i + 1]) ||
            !reserve(plan, width * batch, &plan->grads[i + 1])) {
            return RBE_ERR_SIZE;
        }
        if (layer->kind == RBE_LAYER_LAYER_NORM &&
            (batch > SIZE_MAX / 2 || !reserve(plan, 2 * batch, &plan->stats[i]))) {
            return RBE_ERR_SIZE;
        }
        if (layer->kind == RBE_LAYER_DENSE && layer->trainable) {
            size_t needed = rbe_dense_update_workspace(layer->layout);
            tile = needed > tile ? needed : tile;
        }
    }
    return reserve(plan, tile, &plan->tile) ? RBE_OK : RBE_ERR_SIZE;
}

rbe_status rbe_program_prepare(const rbe_program *program, size_t batch,
                               workspace_plan *plan, size_t *output_width,
                               size_t *failed_layer)
{
    rbe_status status = rbe_program_check(program, output_width, failed_layer);
    if (status != RBE_OK) {
        return status;
    }
    if (batch == 0 || batch > SIZE_MAX / sizeof(float) / program->input_width) {
        return RBE_ERR_SIZE;
    }
    return plan_workspace(program, batch, plan);
}

rbe_status rbe_program_workspace(const rbe_program *program, size_t batch, size_t *floats)
{
    workspace_plan plan;
    size_t output_width;
    size_t failed_layer;

    if (floats == NULL) {
        return RBE_ERR_NULL;
    }
    rbe_status status = rbe_program_prepare(program, batch, &plan, &output_width, &failed_layer);
    if (status == RBE_OK) {
        *floats = plan.total;
    }
    return status;
}

static void add_bias(const float *bias, size_t batch, size_t width, float *y)
{
    for (size_t row = 0; row < batch; row++) {
        for (size_t i = 0; i < width; i++) {
            y[row * width + i] += bias[i];
        }
    }
}

static rbe_status forward_layer(const rbe_layer *layer, const float *input, size_t batch,
                                size_t width_in, float *output, float *stats,
                                unsigned threads)
{
    if (layer->kind == RBE_LAYER_DENSE) {
        rbe_status status = rbe_gemm_f32(layer->layout, (const uint8_t *const *)layer->planes,
                                         layer->planes_used, layer->scale, layer->zero, input,
                                         batch, output, threads);
        if (status == RBE_OK && layer->bias != NULL) {
            add_bias(layer->bias, batch, layer->layout->rows, output);
        }
        return status;
    }
    if (layer->kind == RBE_LAYER_LAYER_NORM) {
        rbe_layer_norm_forward(layer, input, batch, output, stats);
        return RBE_OK;
    }
    rbe_activation_forward(layer->kind, input, batch * width_in, output);
    return RBE_OK;
}

rbe_status rbe_program_run_forward(const rbe_program *program, const workspace_plan *plan,
                                   const float *x, size_t batch, float *workspace,
                                   unsigned threads)
{
    const float *input = x;
    size_t width = program->input_width;

    for (size_t i = 0; i < program->layer_count; i++) {
        const rbe_layer *layer = &program->layers[i];
        float *output = workspace + plan->outputs[i + 1];
        rbe_status status = forward_layer(layer, input, batch, width, output,
                                          workspace + plan->stats[i], threads);
        if (status != RBE_OK) {
            return status;
        }
        input = output;
        width = rbe_layer_output_width(layer, width);
    }
    return RBE_OK;
}

rbe_status rbe_program_forward(const rbe_program *program, const float *x, size_t batch,
                               float *y, float *workspace, size_t workspace_floats,
                               unsigned threads)
{
    workspace_plan plan;
    size_t output_width;
    size_t failed_layer;

    if (x == NULL || y == NULL || workspace == NULL) {
        return RBE_ERR_NULL;
    }
    rbe_status status = rbe_program_prepare(program, batch, &plan, &output_width, &failed_layer);
    if (status != RBE_OK) {
        return status;
    }
    if (workspace_floats < plan.total) {
        return RBE_ERR_SIZE;
    }

    status = rbe_program_run_forward(program, &plan, x, batch, workspace, threads);
    if (status == RBE_OK) {
        const float *output = workspace + plan.outputs[program->layer_count];
        memcpy(y, output, batch * output_width * sizeof(float));
    }
    return status;
}
