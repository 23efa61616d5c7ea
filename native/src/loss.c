/*
 * The losses that close a layer program. Sums run in double: the loss is
 * one number per step, so its cost does not matter, and a float sum over
 * many rows would drift from the onnxruntime engine's value.
 */
#include <math.h>

#include "program_internal.h"

/* loss = mean over rows of logsumexp(z) - z[class]; grad = (softmax - onehot) / batch. */
double rbe_cross_entropy(const float *logits, const int64_t *classes, size_t batch,
                         size_t width, float *grad)
{
    double total = 0.0;

    for (size_t row = 0; row < batch; row++) {
        const float *z = logits + row * width;
        float *dz = grad + row * width;
        double largest = z[0];
        double sum = 0.0;

        for (size_t i = 1; i < width; i++) {
            largest = z[i] > largest ? z[i] : largest;
        }
        for (size_t i = 0; i < width; i++) {
            sum += exp(z[i] - largest);
        }
        double log_sum = largest + log(sum);
        total += log_sum - z[classes[row]];

        for (size_t i = 0; i < width; i++) {
            double probability = exp(z[i] - log_sum);
            double target = (size_t)classes[row] == i ? 1.0 : 0.0;
            dz[i] = (float)((probability - target) / (double)batch);
        }
    }
    return total / (double)batch;
}

/* loss = mean over all elements of (y - t)^2; grad = 2 (y - t) / (batch * width). */
double rbe_mean_squared_error(const float *outputs, const float *targets, size_t batch,
                              size_t width, float *grad)
{
    size_t count = batch * width;
    double total = 0.0;

    for (size_t i = 0; i < count; i++) {
        double difference = (double)outputs[i] - targets[i];
        total += difference * difference;
        grad[i] = (float)(2.0 * difference / (double)count);
    }
    return total / (double)count;
}
