package dev.rbeedge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.Test;

/**
 * The adaptation loop with a JVM implementation of the two graphs: a frozen
 * tanh backbone and a linear layer on the bundle's tensor w3 ([K=32, N=40],
 * layout KN) trained on mean squared error towards targets made by a
 * shifted copy of w3.
 */
public class AdaptationLoopTest {
    private static final int K = 32;
    private static final int N = 40;
    private static final int EXAMPLES = 16;

    /** tanh backbone and MSE train step of a linear layer; gradients computed exactly. */
    static final class LinearGraphs implements AdaptationGraphs<float[], float[], float[]> {
        int backboneRuns;
        boolean dropGradient;

        @Override
        public float[] runBackbone(float[] input) {
            backboneRuns++;
            float[] features = new float[input.length];
            for (int i = 0; i < input.length; i++) {
                features[i] = (float) Math.tanh(input[i]);
            }
            return features;
        }

        @Override
        public StepResult runTrainStep(List<float[]> features, List<float[]> labels,
                Map<String, ByteBuffer> weights) {
            FloatBuffer w = weights.get("w3").asFloatBuffer();
            float[] gradient = new float[K * N];
            double loss = 0;
            int batch = features.size();
            for (int b = 0; b < batch; b++) {
                float[] f = features.get(b);
                for (int n = 0; n < N; n++) {
                    float y = 0;
                    for (int k = 0; k < K; k++) {
                        y += f[k] * w.get(k * N + n);
                    }
                    float error = y - labels.get(b)[n];
                    loss += error * error;
                    for (int k = 0; k < K; k++) {
                        gradient[k * N + n] += 2.0f * f[k] * error / (batch * N);
                    }
                }
            }
            Map<String, FloatBuffer> gradients = dropGradient ? Collections.emptyMap()
                    : Collections.singletonMap("w3", FloatBuffer.wrap(gradient));
            return new StepResult((float) (loss / (batch * N)), gradients);
        }
    }

    private static List<float[]> inputs() {
        Random random = new Random(11);
        List<float[]> inputs = new ArrayList<>();
        for (int i = 0; i < EXAMPLES; i++) {
            float[] x = new float[K];
            for (int k = 0; k < K; k++) {
                x[k] = (float) random.nextGaussian();
            }
            inputs.add(x);
        }
        return inputs;
    }

    /** Targets from w3 plus a shift of about two upper-plane steps per weight. */
    private static List<float[]> labels(Bundle bundle, List<float[]> inputs) {
        FloatBuffer w = bundle.decode("w3", 8).asFloatBuffer();
        Random random = new Random(12);
        float[] target = new float[K * N];
        for (int i = 0; i < target.length; i++) {
            target[i] = w.get(i) + 0.15f * (float) random.nextGaussian();
        }
        LinearGraphs graphs = new LinearGraphs();
        List<float[]> labels = new ArrayList<>();
        for (float[] x : inputs) {
            float[] f = graphs.runBackbone(x);
            float[] y = new float[N];
            for (int n = 0; n < N; n++) {
                for (int k = 0; k < K; k++) {
                    y[n] += f[k] * target[k * N + n];
                }
            }
            labels.add(y);
        }
        return labels;
    }

    private static AdaptationLoop.Options options() {
        return new AdaptationLoop.Options().steps(60).batchSize(8).learningRate(2.0f)
                .upperPlanes(4).foldEvery(20).seed(5);
    }

    @Test
    public void lossFallsAndSavedModelMatches() throws Exception {
        File folder = Fixtures.copyBundle("mlp");
        ByteBuffer adapted;
        List<Float> losses;
        LinearGraphs graphs = new LinearGraphs();
        try (Bundle bundle = Bundle.open(folder)) {
            List<float[]> inputs = inputs();
            List<float[]> labels = labels(bundle, inputs);
            ByteBuffer frozen = bundle.decode("w1", 8);

            losses = new AdaptationLoop<>(bundle, Collections.singletonList("w3"), graphs, options())
                    .run(inputs, labels);

            adapted = bundle.decode("w3", 8);
            assertEquals("w1 is not trainable but changed", frozen, bundle.decode("w1", 8));
            bundle.save();
        }

        assertEquals(60, losses.size());
        assertEquals("the backbone runs once per example", EXAMPLES, graphs.backboneRuns);
        float first = losses.get(0);
        float last = losses.get(losses.size() - 1);
        assertTrue("loss went from " + first + " to " + last + "; expected below a third",
                last < first / 3);

        try (Bundle reopened = Bundle.open(folder)) {
            reopened.verify(8);
            Fixtures.assertSameBits("w3 saved after adaptation", adapted, reopened.decode("w3", 8),
                    reopened.tensor("w3").decodedBytes());
        }
    }

    @Test
    public void sameSeedRepeatsRun() throws Exception {
        List<ByteBuffer> results = new ArrayList<>();
        List<List<Float>> losses = new ArrayList<>();
        for (int run = 0; run < 2; run++) {
            try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
                List<float[]> inputs = inputs();
                List<float[]> labels = labels(bundle, inputs);
                AdaptationLoop.Options options = options().mode(UpdateMode.SIGN).steps(10);
                losses.add(new AdaptationLoop<>(bundle, Collections.singletonList("w3"), new LinearGraphs(),
                        options).run(inputs, labels));
                results.add(bundle.decode("w3", 8));
            }
        }
        assertEquals(losses.get(0), losses.get(1));
        Fixtures.assertSameBits("w3 after two runs with one seed", results.get(0), results.get(1), K * N * 4);
    }

    @Test
    public void missingGradientNamesTensor() throws IOException {
        try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
            LinearGraphs graphs = new LinearGraphs();
            graphs.dropGradient = true;
            List<float[]> inputs = inputs();
            AdaptationLoop<float[], float[], float[]> loop =
                    new AdaptationLoop<>(bundle, Collections.singletonList("w3"), graphs, options());
            IllegalStateException error = assertThrows(IllegalStateException.class,
                    () -> loop.run(inputs, labels(bundle, inputs)));
            assertTrue(error.getMessage(), error.getMessage().contains("'w3'"));
        }
    }

    @Test
    public void badExamplesAndOptionsRejected() throws IOException {
        try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
            List<float[]> inputs = inputs();
            AdaptationLoop<float[], float[], float[]> loop = new AdaptationLoop<>(bundle,
                    Collections.singletonList("w3"), new LinearGraphs(), options());
            assertThrows(IllegalArgumentException.class, () -> loop.run(inputs, inputs.subList(0, 3)));
            assertThrows(IllegalArgumentException.class,
                    () -> loop.run(Collections.emptyList(), Collections.emptyList()));
            assertThrows(NullPointerException.class, () -> loop.run(null, inputs));
            AdaptationLoop<float[], float[], float[]> unknown = new AdaptationLoop<>(bundle,
                    Collections.singletonList("nope"), new LinearGraphs(), options());
            assertThrows(IllegalArgumentException.class, () -> unknown.run(inputs, labels(bundle, inputs)));

            assertThrows(IllegalArgumentException.class, () -> new AdaptationLoop<>(bundle,
                    Collections.<String>emptyList(), new LinearGraphs(), options()));
            assertThrows(IllegalArgumentException.class, () -> options().learningRate(Float.NaN));
            assertThrows(IllegalArgumentException.class, () -> options().learningRate(0f));
            assertThrows(IllegalArgumentException.class, () -> options().steps(0));
            assertThrows(IllegalArgumentException.class, () -> options().foldEvery(-1));
        }
    }
}
