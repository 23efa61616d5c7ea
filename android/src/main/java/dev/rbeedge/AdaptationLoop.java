package dev.rbeedge;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Few-shot adaptation of a bundle. The backbone runs once per example, and
 * its outputs are cached. Each step decodes the trainable tensors, runs the
 * train step on a batch and applies an upper-bitplane update to every
 * trainable tensor. The lower planes are re-estimated every
 * {@link Options#foldEvery} steps and at the end. Call {@link Bundle#save}
 * afterwards to keep the result.
 */
public final class AdaptationLoop<I, F, L> {
    /** Settings of a run. Each setter returns this. */
    public static final class Options {
        int steps = 50;
        int batchSize = 8;
        float learningRate = 1e-3f;
        int upperPlanes = 4;
        UpdateMode mode = UpdateMode.ACCUMULATE;
        int foldEvery = 0;
        long seed = 0;

        /** Training steps to run. */
        public Options steps(int value) {
            steps = requirePositive(value, "steps");
            return this;
        }

        /** Examples per step. Batches go through the examples in order and wrap around. */
        public Options batchSize(int value) {
            batchSize = requirePositive(value, "batchSize");
            return this;
        }

        /** Step size in weight units per gradient unit, positive and finite. */
        public Options learningRate(float value) {
            if (!(value > 0) || Float.isInfinite(value)) {
                throw new IllegalArgumentException("learningRate must be positive and finite, got " + value);
            }
            learningRate = value;
            return this;
        }

        /** U, the top planes that updates change, 1..B of each trainable tensor. */
        public Options upperPlanes(int value) {
            upperPlanes = requirePositive(value, "upperPlanes");
            return this;
        }

        public Options mode(UpdateMode value) {
            if (value == null) {
                throw new NullPointerException("mode is null");
            }
            mode = value;
            return this;
        }

        /** Sets how many steps pass between LSB re-estimations. 0 folds only at the end. */
        public Options foldEvery(int value) {
            if (value < 0) {
                throw new IllegalArgumentException("foldEvery must be 0 or positive, got " + value);
            }
            foldEvery = value;
            return this;
        }

        /**
         * Seed of the stochastic rounding. Tensor i of the table uses seed + i.
         * The same seed and examples repeat a run exactly.
         */
        public Options seed(long value) {
            seed = value;
            return this;
        }

        private static int requirePositive(int value, String name) {
            if (value < 1) {
                throw new IllegalArgumentException(name + " must be positive, got " + value);
            }
            return value;
        }
    }

    private final Bundle bundle;
    private final List<String> trainableNames;
    private final AdaptationGraphs<I, F, L> graphs;
    private final Options options;

    public AdaptationLoop(Bundle bundle, List<String> trainableNames,
            AdaptationGraphs<I, F, L> graphs, Options options) {
        if (bundle == null || trainableNames == null || graphs == null || options == null) {
            throw new NullPointerException("bundle, trainableNames, graphs and options must not be null");
        }
        if (trainableNames.isEmpty()) {
            throw new IllegalArgumentException("name at least one trainable tensor");
        }
        this.bundle = bundle;
        this.trainableNames = new ArrayList<>(trainableNames);
        this.graphs = graphs;
        this.options = options;
    }

    /**
     * Trains on the examples (inputs[i], labels[i]) and returns the loss of
     * every step. Exceptions of the graphs propagate unchanged, and the
     * planes then keep the updates of the steps that finished.
     */
    public List<Float> run(List<I> inputs, List<L> labels) throws Exception {
        checkExamples(inputs, labels);
        Map<String, TrainableTensor> tensors = makeTrainable();
        List<F> features = new ArrayList<>();
        for (I input : inputs) {
            features.add(graphs.runBackbone(input));
        }

        Map<String, ByteBuffer> weights = new LinkedHashMap<>();
        for (String name : trainableNames) {
            weights.put(name, bundle.decode(name, bundle.tensor(name).bits()));
        }
        Map<String, ByteBuffer> weightsView = Collections.unmodifiableMap(weights);

        List<Float> losses = new ArrayList<>();
        for (int step = 0; step < options.steps; step++) {
            losses.add(runStep(step, tensors, features, labels, weights, weightsView));
            if (options.foldEvery > 0 && (step + 1) % options.foldEvery == 0) {
                foldAll(tensors);
            }
        }
        foldAll(tensors);
        return losses;
    }

    private float runStep(int step, Map<String, TrainableTensor> tensors, List<F> features,
            List<L> labels, Map<String, ByteBuffer> weights, Map<String, ByteBuffer> weightsView)
            throws Exception {
        for (Map.Entry<String, ByteBuffer> weight : weights.entrySet()) {
            bundle.decode(weight.getKey(), tensors.get(weight.getKey()).info().bits(), weight.getValue());
        }

        List<F> batchFeatures = new ArrayList<>();
        List<L> batchLabels = new ArrayList<>();
        for (int i = 0; i < options.batchSize; i++) {
            int example = (int) (((long) step * options.batchSize + i) % features.size());
            batchFeatures.add(features.get(example));
            batchLabels.add(labels.get(example));
        }
        StepResult result = graphs.runTrainStep(batchFeatures, batchLabels, weightsView);
        if (result == null) {
            throw new IllegalStateException("runTrainStep returned null at step " + step);
        }

        for (TrainableTensor tensor : tensors.values()) {
            FloatBuffer gradient = result.gradients().get(tensor.info().name());
            if (gradient == null) {
                throw new IllegalStateException("train step " + step + " returned no gradient for tensor '"
                        + tensor.info().name() + "'; it returned " + result.gradients().keySet());
            }
            tensor.update(gradient, options.learningRate, options.seed + tensor.info().index(), step);
        }
        return result.loss();
    }

    private Map<String, TrainableTensor> makeTrainable() {
        Map<String, TrainableTensor> tensors = new LinkedHashMap<>();
        for (String name : trainableNames) {
            tensors.put(name, bundle.trainable(name, options.upperPlanes, options.mode));
        }
        return tensors;
    }

    private static void foldAll(Map<String, TrainableTensor> tensors) {
        for (TrainableTensor tensor : tensors.values()) {
            tensor.foldLsb();
        }
    }

    private static void checkExamples(List<?> inputs, List<?> labels) {
        if (inputs == null || labels == null) {
            throw new NullPointerException("inputs and labels must not be null");
        }
        if (inputs.isEmpty() || inputs.size() != labels.size()) {
            throw new IllegalArgumentException("need one label per input and at least one example; got "
                    + inputs.size() + " inputs and " + labels.size() + " labels");
        }
    }
}
