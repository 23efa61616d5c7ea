package dev.rbeedge;

import java.nio.FloatBuffer;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/** The output of one train_step.onnx run: the loss and the gradient of every trainable tensor. */
public final class StepResult {
    private final float loss;
    private final Map<String, FloatBuffer> gradients;

    /**
     * @param loss the batch loss
     * @param gradients tensor name to the gradient with respect to its decoded
     *     values, in the tensor's original shape, read from index 0
     */
    public StepResult(float loss, Map<String, FloatBuffer> gradients) {
        if (gradients == null) {
            throw new NullPointerException("the gradient map is null");
        }
        this.loss = loss;
        this.gradients = Collections.unmodifiableMap(new LinkedHashMap<>(gradients));
    }

    public float loss() {
        return loss;
    }

    public Map<String, FloatBuffer> gradients() {
        return gradients;
    }
}
