package dev.rbeedge;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import org.junit.Test;

/** Bad input to the Java API and straight to the JNI entry points: exceptions, never crashes. */
public class BundleErrorsTest {
    private static void assertMentions(Throwable error, String... parts) {
        for (String part : parts) {
            assertTrue("message '" + error.getMessage() + "' should mention '" + part + "'",
                    error.getMessage().contains(part));
        }
    }

    /** Copies the mlp bundle and changes one byte of its model.rbe at `offset`. */
    private static File corrupted(long offset) throws IOException {
        File folder = Fixtures.copyBundle("mlp");
        try (RandomAccessFile file = new RandomAccessFile(new File(folder, Bundle.MODEL_FILE), "rw")) {
            file.seek(offset);
            int value = file.read();
            file.seek(offset);
            file.write(value ^ 0x40);
        }
        return folder;
    }

    @Test
    public void missingFileIsIoError() {
        assertThrows(NullPointerException.class, () -> Bundle.open(null));
        File missing = new File(Fixtures.root(), "no-such-bundle");
        IOException error = assertThrows(IOException.class, () -> Bundle.open(missing));
        assertMentions(error, "no-such-bundle", "not found");
    }

    @Test
    public void corruptedHeaderIsRejected() throws IOException {
        File folder = corrupted(20);
        RbeException error = assertThrows(RbeException.class, () -> Bundle.open(folder));
        assertEquals(RbeException.ERR_CHECKSUM, error.status());
        assertMentions(error, folder.getPath(), "CRC32C");
    }

    @Test
    public void badMagicIsRejected() throws IOException {
        File folder = corrupted(0);
        RbeException error = assertThrows(RbeException.class, () -> Bundle.open(folder));
        assertEquals(RbeException.ERR_FORMAT, error.status());
        assertMentions(error, "malformed");
    }

    @Test
    public void corruptedPlaneFailsVerify() throws IOException {
        long offset;
        try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
            offset = bundle.tensor("w2").planeOffset(5) + 3;
        }
        try (Bundle bundle = Bundle.open(corrupted(offset))) {
            bundle.verify(5);
            RbeException error = assertThrows(RbeException.class, () -> bundle.verify(6));
            assertEquals(RbeException.ERR_CHECKSUM, error.status());
            assertThrows(IllegalArgumentException.class, () -> bundle.verify(9));
            assertThrows(IllegalArgumentException.class, () -> bundle.verify(0));
        }
    }

    @Test
    public void truncatedFileIsRejected() throws IOException {
        File folder = Fixtures.copyBundle("mlp");
        File model = new File(folder, Bundle.MODEL_FILE);
        try (RandomAccessFile file = new RandomAccessFile(model, "rw")) {
            file.setLength(file.length() - 100);
        }
        RbeException error = assertThrows(RbeException.class, () -> Bundle.open(folder));
        assertEquals(RbeException.ERR_TRUNCATED, error.status());

        Files.write(model.toPath(), new byte[10]);
        assertThrows(RbeException.class, () -> Bundle.open(folder));
        Files.write(model.toPath(), new byte[0]);
        assertThrows(RbeException.class, () -> Bundle.open(folder));
    }

    @Test
    public void repeatedTensorNameIsRejected() throws IOException {
        File folder = Fixtures.copyBundle("mlp");
        File model = new File(folder, Bundle.MODEL_FILE);
        byte[] bytes = Files.readAllBytes(model.toPath());
        String text = new String(bytes, java.nio.charset.StandardCharsets.ISO_8859_1);
        int names = text.indexOf("w1w2w3");
        assertTrue("the names area of " + model + " was not found", names > 0);
        bytes[names + 5] = '2';

        // Reseal the header and table so that only the repeated name is wrong.
        int dataOffset = (int) ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(32);
        ByteBuffer head = ByteBuffer.allocateDirect(dataOffset);
        head.put(bytes, 0, dataOffset);
        NativeBridge.sealHead(head);
        head.clear();
        head.get(bytes, 0, dataOffset);
        Files.write(model.toPath(), bytes);

        RbeException error = assertThrows(RbeException.class, () -> Bundle.open(folder));
        assertEquals(RbeException.ERR_FORMAT, error.status());
        assertMentions(error, "'w2'", "twice");
    }

    @Test
    public void badArgumentsAreRejected() throws IOException {
        try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
            TensorInfo w1 = bundle.tensor("w1");
            ByteBuffer good = bundle.decode("w1", 8);

            assertMentions(assertThrows(IllegalArgumentException.class, () -> bundle.tensor("nope")),
                    "nope", "w1");
            assertThrows(IllegalArgumentException.class, () -> bundle.decode("w1", 0));
            assertThrows(IllegalArgumentException.class, () -> bundle.decode("w1", 9));
            assertThrows(NullPointerException.class, () -> bundle.decode("w1", 8, null));
            assertMentions(assertThrows(IllegalArgumentException.class,
                    () -> bundle.decode("w1", 8, ByteBuffer.allocate(w1.decodedBytes()))), "direct");
            assertMentions(assertThrows(IllegalArgumentException.class,
                    () -> bundle.decode("w1", 8, ByteBuffer.allocateDirect(w1.decodedBytes() - 4)
                            .order(ByteOrder.nativeOrder()))), "bytes");
            ByteOrder other = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN
                    ? ByteOrder.BIG_ENDIAN : ByteOrder.LITTLE_ENDIAN;
            assertThrows(IllegalArgumentException.class,
                    () -> bundle.decode("w1", 8, ByteBuffer.allocateDirect(w1.decodedBytes()).order(other)));
            assertThrows(IllegalArgumentException.class, () -> bundle.refine("w1", good, 8));
            assertThrows(IllegalArgumentException.class, () -> bundle.refine("w1", good, 0));
            assertThrows(IllegalArgumentException.class, () -> bundle.trainable("w1", 0, UpdateMode.SIGN));
            assertThrows(IllegalArgumentException.class, () -> bundle.trainable("w1", 9, UpdateMode.SIGN));
            assertThrows(NullPointerException.class, () -> bundle.trainable("w1", 2, null));
        }
    }

    @Test
    public void closedBundleRejectsEveryCall() throws IOException {
        Bundle bundle = Bundle.open(Fixtures.copyBundle("mlp"));
        ByteBuffer decoded = bundle.decode("w3", 2);
        TrainableTensor trainable = bundle.trainable("w3", 3, UpdateMode.ACCUMULATE);
        float[] gradient = new float[(int) trainable.info().elementCount()];
        bundle.close();
        bundle.close();

        assertThrows(IllegalStateException.class, () -> bundle.decode("w3", 2));
        assertThrows(IllegalStateException.class, () -> bundle.refine("w3", decoded, 2));
        assertThrows(IllegalStateException.class, () -> bundle.tensor("w3"));
        assertThrows(IllegalStateException.class, () -> bundle.verify(1));
        assertThrows(IllegalStateException.class, () -> bundle.save());
        assertThrows(IllegalStateException.class, () -> trainable.update(gradient, 0.1f, 0, 0));
        assertThrows(IllegalStateException.class, trainable::foldLsb);
        assertThrows(IllegalStateException.class, trainable::accumulator);
    }

    @Test
    public void nonFiniteUpdateChangesNothing() throws IOException {
        try (Bundle bundle = Bundle.open(Fixtures.copyBundle("mlp"))) {
            TrainableTensor w2 = bundle.trainable("w2", 4, UpdateMode.ACCUMULATE);
            ByteBuffer before = bundle.decode("w2", 8);
            float[] gradient = new float[(int) w2.info().elementCount()];
            java.util.Arrays.fill(gradient, 1.0f);
            gradient[gradient.length - 1] = Float.NaN;

            RbeException nan = assertThrows(RbeException.class, () -> w2.update(gradient, 0.5f, 1, 0));
            assertEquals(RbeException.ERR_VALUE, nan.status());
            assertMentions(nan, "w2");
            gradient[gradient.length - 1] = 1.0f;
            RbeException rate = assertThrows(RbeException.class, () -> w2.update(gradient, -0.5f, 1, 0));
            assertEquals(RbeException.ERR_VALUE, rate.status());
            assertThrows(IllegalArgumentException.class,
                    () -> w2.update(new float[gradient.length - 1], 0.5f, 1, 0));
            assertThrows(NullPointerException.class, () -> w2.update((float[]) null, 0.5f, 1, 0));

            Fixtures.assertSameBits("w2 after rejected updates", before, bundle.decode("w2", 8),
                    w2.info().decodedBytes());
        }
    }

    @Test
    public void nativeEntryPointsCheckArguments() throws IOException {
        try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp"))) {
            long handle = bundle.handle();
            int bytes = bundle.tensor("w1").decodedBytes();
            ByteBuffer out = ByteBuffer.allocateDirect(bytes + 8);

            assertThrows(IllegalStateException.class, () -> NativeBridge.decode(0, 0, null, 1, out));
            assertThrows(IllegalArgumentException.class, () -> NativeBridge.decode(handle, -1, null, 1, out));
            assertThrows(IllegalArgumentException.class, () -> NativeBridge.decode(handle, 3, null, 1, out));
            assertThrows(IllegalArgumentException.class, () -> NativeBridge.decode(handle, 0, null, 99, out));
            assertThrows(NullPointerException.class, () -> NativeBridge.decode(handle, 0, null, 1, null));
            assertThrows(IllegalArgumentException.class,
                    () -> NativeBridge.decode(handle, 0, null, 1, ByteBuffer.allocate(bytes)));
            out.position(1);
            ByteBuffer misaligned = out.slice();
            assertThrows(IllegalArgumentException.class, () -> NativeBridge.decode(handle, 0, null, 1, misaligned));
            assertThrows(IllegalArgumentException.class,
                    () -> NativeBridge.decode(handle, 0, ByteBuffer.allocateDirect(16), 1, out));
            // Large enough for tensor 2 (w3), so only its read-only state is wrong.
            ByteBuffer readOnlyMapping = Bundle.map(new File(Fixtures.bundle("mlp"), Bundle.MODEL_FILE));
            IllegalArgumentException readOnly = assertThrows(IllegalArgumentException.class,
                    () -> NativeBridge.decode(handle, 2, null, 1, readOnlyMapping));
            assertMentions(readOnly, "read-only");
            assertThrows(IllegalArgumentException.class,
                    () -> NativeBridge.sealHead(readOnlyMapping));
            assertThrows(IllegalArgumentException.class,
                    () -> bundle.decode("w1", 8, out.duplicate().asReadOnlyBuffer()));
            assertThrows(IllegalArgumentException.class,
                    () -> NativeBridge.update(handle, 0, null, out, null, 4, 1, 0.1f, 0, 0));
            assertThrows(IllegalArgumentException.class,
                    () -> NativeBridge.foldLsb(handle, 0, null, null, 4));
            assertThrows(IllegalArgumentException.class, () -> NativeBridge.verify(handle, 0));
            assertThrows(IllegalArgumentException.class, () -> NativeBridge.open(out, -1));
            assertThrows(IllegalArgumentException.class, () -> NativeBridge.open(out, bytes + 9));
            assertThrows(IllegalArgumentException.class, () -> NativeBridge.crc32c(out, 4, bytes + 5));
            assertThrows(IllegalArgumentException.class, () -> NativeBridge.crc32c(out, -1, 1));

            RbeException shortHead = assertThrows(RbeException.class,
                    () -> NativeBridge.setPlaneCrc(ByteBuffer.allocateDirect(32), 0, 0, 0));
            assertEquals(RbeException.ERR_FORMAT, shortHead.status());
            RbeException empty = assertThrows(RbeException.class,
                    () -> NativeBridge.open(ByteBuffer.allocateDirect(64), 64));
            assertEquals(RbeException.ERR_FORMAT, empty.status());
        }
    }
}
