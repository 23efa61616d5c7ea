package dev.rbeedge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertSame;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import org.junit.Test;

/** Upper-bitplane updates, LSB re-estimation and saving, against the Python SDK bit for bit. */
public class TrainableTensorTest {
    /** Applies the two steps of a Python case through `path`: 0 ByteBuffer, 1 FloatBuffer, 2 float[]. */
    private static void applySteps(TrainableTensor tensor, Fixtures.UpdateCase c, int path) throws IOException {
        for (int step = 0; step < 2; step++) {
            ByteBuffer gradient = Fixtures.updateFile(c.prefix + ".grad" + step + ".f32");
            if (path == 0) {
                tensor.update(gradient, c.learningRate, c.seed, step);
            } else if (path == 1) {
                tensor.update(gradient.asFloatBuffer(), c.learningRate, c.seed, step);
            } else {
                float[] values = new float[(int) tensor.info().elementCount()];
                gradient.asFloatBuffer().get(values);
                tensor.update(values, c.learningRate, c.seed, step);
            }
        }
    }

    @Test
    public void updateAndFoldEqualPython() throws IOException {
        for (Fixtures.UpdateCase c : Fixtures.updateCases()) {
            for (int path = 0; path < 3; path++) {
                try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
                    TensorInfo info = bundle.tensors().get(c.index);
                    String description = info.name() + " " + c.mode + " via input kind " + path;
                    TrainableTensor tensor = bundle.trainable(info.name(), c.upperPlanes, c.mode);
                    ByteBuffer before = bundle.decode(info.name(), info.bits());

                    applySteps(tensor, c, path);
                    ByteBuffer updated = bundle.decode(info.name(), info.bits());
                    Fixtures.assertSameBits(description + " after two steps",
                            Fixtures.updateFile(c.prefix + ".updated.f32"), updated, info.decodedBytes());
                    assertNotEquals(description + ": the steps changed no weight", before, updated);

                    tensor.foldLsb();
                    Fixtures.assertSameBits(description + " after the LSB fold",
                            Fixtures.updateFile(c.prefix + ".folded.f32"),
                            bundle.decode(info.name(), info.bits()), info.decodedBytes());
                }
            }
        }
    }

    @Test
    public void updateChangesOnlyUpperPlanes() throws IOException {
        Fixtures.UpdateCase c = Fixtures.updateCases().get(0);
        try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
            TensorInfo info = bundle.tensors().get(c.index);
            TrainableTensor tensor = bundle.trainable(info.name(), c.upperPlanes, c.mode);
            ByteBuffer original = copy(tensor.planes());

            applySteps(tensor, c, 0);

            int planeBytes = (int) info.planeBytes();
            int upperBytes = c.upperPlanes * planeBytes;
            assertNotEquals("the upper planes did not change",
                    slice(original, 0, upperBytes), slice(tensor.planes(), 0, upperBytes));
            assertEquals("a lower plane changed before the fold",
                    slice(original, upperBytes, info.bits() * planeBytes),
                    slice(tensor.planes(), upperBytes, info.bits() * planeBytes));
        }
    }

    @Test
    public void accumulatorOnlyInAccumulateMode() throws IOException {
        try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
            TrainableTensor accumulate = bundle.trainable("w1", 4, UpdateMode.ACCUMULATE);
            assertEquals(accumulate.info().elementCount(), accumulate.accumulator().capacity());
            assertTrue(accumulate.accumulator().isReadOnly());
            assertSame(accumulate, bundle.trainable("w1", 4, UpdateMode.ACCUMULATE));
            assertThrows(IllegalArgumentException.class, () -> bundle.trainable("w1", 3, UpdateMode.ACCUMULATE));
            assertThrows(IllegalArgumentException.class, () -> bundle.trainable("w1", 4, UpdateMode.SIGN));

            TrainableTensor sign = bundle.trainable("w2", 2, UpdateMode.SIGN);
            assertNull(sign.accumulator());
            ByteBuffer before = bundle.decode("w2", 8);
            sign.foldLsb();
            assertEquals("foldLsb in SIGN mode changed w2", before, bundle.decode("w2", 8));
        }
    }

    @Test
    public void saveWritesTrainedPlanesAtomically() throws IOException {
        File folder = Fixtures.copyBundle("mlp");
        Fixtures.UpdateCase c = Fixtures.updateCases().get(0);
        ByteBuffer trained;
        String name;
        try (Bundle bundle = Bundle.open(folder)) {
            name = bundle.tensors().get(c.index).name();
            TrainableTensor tensor = bundle.trainable(name, c.upperPlanes, c.mode);
            applySteps(tensor, c, 0);
            tensor.foldLsb();
            trained = bundle.decode(name, 8);
            bundle.save();
            bundle.save();
            // The bundle keeps working on its trained copy after a save.
            Fixtures.assertSameBits(name + " after save", trained, bundle.decode(name, 8),
                    tensor.info().decodedBytes());
        }
        String[] left = folder.list((dir, file) -> file.endsWith(".tmp"));
        assertEquals("temporary files left in " + folder, 0, left.length);

        try (Bundle reopened = Bundle.open(folder)) {
            reopened.verify(reopened.planesAvailable());
            for (TensorInfo info : reopened.tensors()) {
                ByteBuffer expected = info.name().equals(name) ? trained
                        : Fixtures.reference("mlp", info.index(), 8);
                Fixtures.assertSameBits(info.name() + " reopened", expected, reopened.decode(info.name(), 8),
                        info.decodedBytes());
                ByteBuffer refined = reopened.decode(info.name(), 1);
                for (int planes = 1; planes < 8; planes++) {
                    reopened.refine(info.name(), refined, planes);
                }
                Fixtures.assertSameBits(info.name() + " reopened and refined", expected, refined,
                        info.decodedBytes());
            }
        }
    }

    @Test
    public void savedFileForPythonCheck() throws IOException {
        File saved = new File(Fixtures.root(), "saved");
        deleteFolder(saved);
        assertTrue(saved.mkdirs());
        File target = new File(saved, Bundle.MODEL_FILE);

        try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
            for (Fixtures.UpdateCase c : Fixtures.updateCases()) {
                if (c.mode != UpdateMode.ACCUMULATE) {
                    continue;
                }
                TensorInfo info = bundle.tensors().get(c.index);
                TrainableTensor tensor = bundle.trainable(info.name(), c.upperPlanes, c.mode);
                applySteps(tensor, c, 0);
            }
            // Saved before the fold: check_saved.py must read unfolded planes too.
            bundle.saveTo(target);
            for (TensorInfo info : bundle.tensors()) {
                ByteBuffer decoded = bundle.decode(info.name(), info.bits());
                writeLittleEndian(decoded, info.decodedBytes(), new File(saved, info.index() + ".f32"));
            }
        }
    }

    @Test
    public void failedSaveKeepsTarget() throws IOException {
        File folder = Fixtures.copyBundle("mlp");
        File target = new File(folder, "elsewhere.rbe");
        Files.write(target.toPath(), new byte[] {1, 2, 3});
        File missingFolder = new File(folder, "missing/model.rbe");
        try (Bundle bundle = Bundle.open(folder)) {
            bundle.trainable("w3", 4, UpdateMode.SIGN);
            assertThrows(IOException.class, () -> bundle.saveTo(missingFolder));
            assertThrows(NullPointerException.class, () -> bundle.saveTo(null));
        }
        assertEquals(3, Files.size(target.toPath()));
    }

    private static ByteBuffer copy(ByteBuffer source) {
        ByteBuffer copy = ByteBuffer.allocate(source.capacity());
        ByteBuffer view = source.duplicate();
        view.clear();
        copy.put(view);
        copy.clear();
        return copy;
    }

    private static ByteBuffer slice(ByteBuffer source, int start, int end) {
        ByteBuffer view = source.duplicate();
        view.limit(end);
        view.position(start);
        return view.slice();
    }

    private static void writeLittleEndian(ByteBuffer floats, int bytes, File file) throws IOException {
        ByteBuffer out = ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
        FloatBuffer values = floats.duplicate().order(ByteOrder.nativeOrder()).asFloatBuffer();
        for (int i = 0; i < bytes / Float.BYTES; i++) {
            out.putFloat(values.get(i));
        }
        out.flip();
        try (FileChannel channel = FileChannel.open(file.toPath(), StandardOpenOption.CREATE,
                StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            while (out.hasRemaining()) {
                channel.write(out);
            }
        }
    }

    private static void deleteFolder(File folder) {
        File[] files = folder.listFiles();
        if (files != null) {
            for (File file : files) {
                file.delete();
            }
        }
        folder.delete();
    }
}
