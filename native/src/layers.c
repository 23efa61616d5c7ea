/*
 * Forward and backward passes of the row-wise layers of a layer program:
 * activations and layer normalization. Their cost is O(batch * width), far
 * below that of the dense layers, so they are plain C that the compiler may
 * vectorize. Only the dense products have SIMD kernels.
 */
#include <math.h>

#include "program_internal.h"

#define RBE_SQRT_HALF 0.70710678118654752440
#define RBE_INV_SQRT_2PI 0.39894228040143267794
#define RBE_SQRT_2_OVER_PI 0.79788456080286535588
#define RBE_GELU_CUBIC 0.044715

/* Activations map an element to an element; `input` and `output` are the
 * layer's forward input and output, so backward can use either. */
static float activation_forward(rbe_layer_kind kind, float x)
{
    switch (kind) {
    case RBE_LAYER_RELU:
        return x < 0.0f ? 0.0f : x;     /* keeps NaN, as ONNX Relu does */
    case RBE_LAYER_GELU:
        return (float)(0.5 * x * (1.0 + erf(x * RBE_SQRT_HALF)));
    case RBE_LAYER_GELU_TANH: {
        double inner = RBE_SQRT_2_OVER_PI * (x + RBE_GELU_CUBIC * (double)x * x * x);
        return (float)(0.5 * x * (1.0 + tanh(inner)));
    }
    default:
        return tanhf(x);
    }
}

static float activation_slope(rbe_layer_kind kind, float x, float y)
{
    switch (kind) {
    case RBE_LAYER_RELU:
        return x > 0.0f ? 1.0f : 0.0f;
    case RBE_LAYER_GELU: {
        double cdf = 0.5 * (1.0 + erf(x * RBE_SQRT_HALF));
        return (float)(cdf + x * RBE_INV_SQRT_2PI * exp(-0.5 * (double)x * x));
    }
    case RBE_LAYER_GELU_TANH: {
        double x2 = (double)x * x;
        double t = tanh(RBE_SQRT_2_OVER_PI * (x + RBE_GELU_CUBIC * x2 * x));
        double inner_slope = RBE_SQRT_2_OVER_PI * (1.0 + 3.0 * RBE_GELU_CUBIC * x2);
        return (float)(0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * inner_slope);
    }
    default:
        return 1.0f - y * y;
    }
}

void rbe_activation_forward(rbe_layer_kind kind, const float *input, size_t count,
                            float *output)
{
    for (size_t i = 0; i < count; i++) {
        output[i] = activation_forward(kind, input[i]);
    }
}

void rbe_activation_backward(rbe_layer_kind kind, const float *input, const float *output,
                             const float *grad_output, size_t count, float *grad_input)
{
    for (size_t i = 0; i < count; i++) {
        grad_input[i] = grad_output[i] * activation_slope(kind, input[i], output[i]);
    }
}

/*
 * Normalizes each row over its `width` elements. Means and variances are
 * accumulated in double so that wide rows with a large mean keep their
 * precision. stats[2 * row] is the mean and stats[2 * row + 1] the
 * reciprocal standard deviation, kept for backward.
 */
void rbe_layer_norm_forward(const rbe_layer *layer, const float *input, size_t batch,
                            float *output, float *stats)
{
    size_t width = layer->width;

    for (size_t row = 0; row < batch; row++) {
        const float *x = input + row * width;
        float *y = output + row * width;
        double sum = 0.0;
        double squares = 0.0;

        for (size_t i = 0; i < width; i++) {
            sum += x[i];
        }
        /* Rounded to float once, so backward uses the same values as forward. */
        double mean = (float)(sum / (double)width);
        for (size_t i = 0; i < width; i++) {
            double centered = x[i] - mean;
            squares += centered * centered;
        }
        double rstd = (float)(1.0 / sqrt(squares / (double)width + layer->epsilon));

        for (size_t i = 0; i < width; i++) {
            double normalized = (x[i] - mean) * rstd;
            double beta = layer->beta != NULL ? layer->beta[i] : 0.0;
            y[i] = (float)(normalized * layer->gamma[i] + beta);
        }
        stats[2 * row] = (float)mean;
        stats[2 * row + 1] = (float)rstd;
    }
}

/*
 * dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with
 * dxhat = dy * gamma and xhat the normalized input.
 */
void rbe_layer_norm_backward(const rbe_layer *layer, const float *input, const float *stats,
                             const float *grad_output, size_t batch, float *grad_input)
{
    size_t width = layer->width;

    for (size_t row = 0; row < batch; row++) {
        const float *x = input + row * width;
        const float *dy = grad_output + row * width;
        float *dx = grad_input + row * width;
        double mean = stats[2 * row];
        double rstd = stats[2 * row + 1];
        double sum_dxhat = 0.0;
        double sum_dxhat_xhat = 0.0;

        for (size_t i = 0; i < width; i++) {
            double dxhat = (double)dy[i] * layer->gamma[i];
            sum_dxhat += dxhat;
            sum_dxhat_xhat += dxhat * (x[i] - mean) * rstd;
        }
        double mean_dxhat = sum_dxhat / (double)width;
        double mean_dxhat_xhat = sum_dxhat_xhat / (double)width;

        for (size_t i = 0; i < width; i++) {
            double xhat = (x[i] - mean) * rstd;
            double dxhat = (double)dy[i] * layer->gamma[i];
            dx[i] = (float)(rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat));
        }
    }
}
