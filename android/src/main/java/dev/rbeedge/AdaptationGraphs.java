package dev.rbeedge;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;

/**
 * The two graphs of an adaptation bundle, as run by an inference engine:
 * backbone.onnx (the frozen layers before the first trainable one) and
 * train_step.onnx (the trainable layers, the loss and its gradients). On
 * Android this is onnxruntime-android; android/README.md shows that
 * implementation.
 *
 * @param <I> one example's input
 * @param <F> the backbone's output for one example (cached for the whole run)
 * @param <L> one example's label
 */
public interface AdaptationGraphs<I, F, L> {
    /** Runs backbone.onnx on one example. */
    F runBackbone(I input) throws Exception;

    /**
     * Runs train_step.onnx on a batch. {@code weights} maps each trainable
     * tensor name to its decoded values (direct, native byte order, original
     * shape); the buffers are reused between steps, so do not keep them.
     */
    StepResult runTrainStep(List<F> features, List<L> labels, Map<String, ByteBuffer> weights)
            throws Exception;
}
