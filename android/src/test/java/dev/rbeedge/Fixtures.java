package dev.rbeedge;

import static org.junit.Assert.assertEquals;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

/**
 * The bundles and reference results written by src/test/python/make_fixtures.py,
 * found through the system property rbeedge.fixtures.
 */
final class Fixtures {
    /** One line of ref/tensors.txt. */
    static final class TensorLine {
        int index;
        String name;
        String layout;
        int bits;
        int planesPresent;
        long[] shape;
    }

    /** One line of update/cases.txt. */
    static final class UpdateCase {
        int index;
        UpdateMode mode;
        int upperPlanes;
        long seed;
        float learningRate;
        String prefix;
    }

    private Fixtures() {
    }

    static File root() {
        String path = System.getProperty("rbeedge.fixtures");
        if (path == null) {
            throw new IllegalStateException("set -Drbeedge.fixtures to the folder written by make_fixtures.py");
        }
        return new File(path);
    }

    static File bundle(String name) {
        return new File(root(), name);
    }

    static List<TensorLine> tensors(String bundle) throws IOException {
        List<TensorLine> lines = new ArrayList<>();
        for (String text : Files.readAllLines(new File(bundle(bundle), "ref/tensors.txt").toPath())) {
            String[] parts = text.trim().split(" ");
            TensorLine line = new TensorLine();
            line.index = Integer.parseInt(parts[0]);
            line.name = parts[1];
            line.layout = parts[2];
            line.bits = Integer.parseInt(parts[3]);
            line.planesPresent = Integer.parseInt(parts[4]);
            line.shape = new long[parts.length - 5];
            for (int i = 0; i < line.shape.length; i++) {
                line.shape[i] = Long.parseLong(parts[5 + i]);
            }
            lines.add(line);
        }
        return lines;
    }

    static List<UpdateCase> updateCases() throws IOException {
        List<UpdateCase> cases = new ArrayList<>();
        for (String text : Files.readAllLines(new File(root(), "update/cases.txt").toPath())) {
            String[] parts = text.trim().split(" ");
            UpdateCase c = new UpdateCase();
            c.index = Integer.parseInt(parts[0]);
            c.mode = UpdateMode.valueOf(parts[1].toUpperCase());
            c.upperPlanes = Integer.parseInt(parts[2]);
            c.seed = Long.parseLong(parts[3]);
            c.learningRate = Float.parseFloat(parts[4]);
            c.prefix = parts[0] + "." + parts[1];
            cases.add(c);
        }
        return cases;
    }

    /** Reads a little-endian float32 file into a direct buffer in native order. */
    static ByteBuffer readFloats(File file) throws IOException {
        byte[] bytes = Files.readAllBytes(file.toPath());
        ByteBuffer little = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer out = ByteBuffer.allocateDirect(bytes.length).order(ByteOrder.nativeOrder());
        while (little.hasRemaining()) {
            out.putFloat(little.getFloat());
        }
        out.clear();
        return out;
    }

    static ByteBuffer reference(String bundle, int index, int planes) throws IOException {
        return readFloats(new File(bundle(bundle), "ref/" + index + ".p" + planes + ".f32"));
    }

    static ByteBuffer updateFile(String name) throws IOException {
        return readFloats(new File(root(), "update/" + name));
    }

    /** Asserts that two float32 buffers hold the same bits, naming the first differing element. */
    static void assertSameBits(String description, ByteBuffer expected, ByteBuffer actual, int bytes) {
        for (int i = 0; i < bytes / Float.BYTES; i++) {
            int e = Float.floatToRawIntBits(expected.getFloat(i * Float.BYTES));
            int a = Float.floatToRawIntBits(actual.getFloat(i * Float.BYTES));
            if (e != a) {
                assertEquals(description + ": element " + i + " differs (expected "
                        + Float.intBitsToFloat(e) + ", got " + Float.intBitsToFloat(a) + ")", e, a);
            }
        }
    }

    /** Copies a bundle folder into a new temporary folder, so a test may change it. */
    static File copyBundle(String name) throws IOException {
        Path target = Files.createTempDirectory(root().toPath(), "copy-" + name + "-");
        Path source = bundle(name).toPath();
        try (Stream<Path> files = Files.list(source)) {
            for (Path file : (Iterable<Path>) files::iterator) {
                if (Files.isRegularFile(file)) {
                    Files.copy(file, target.resolve(file.getFileName()), StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
        return target.toFile();
    }
}
