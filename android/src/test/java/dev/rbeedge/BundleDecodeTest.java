package dev.rbeedge;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import org.junit.Test;

/** Decoding on the JVM against the Python SDK's PackedTensor.decode, bit for bit. */
public class BundleDecodeTest {
    private static final String[] BUNDLES = {"mlp", "cnn", "mlp_prefix"};

    @Test
    public void tensorTableMatchesPython() throws IOException {
        for (String name : BUNDLES) {
            try (Bundle bundle = Bundle.open(Fixtures.bundle(name))) {
                List<Fixtures.TensorLine> expected = Fixtures.tensors(name);
                assertEquals(name + ": tensor count", expected.size(), bundle.tensors().size());
                for (Fixtures.TensorLine line : expected) {
                    TensorInfo info = bundle.tensor(line.name);
                    assertEquals(name + "/" + line.name + ": index", line.index, info.index());
                    assertEquals(name + "/" + line.name + ": layout", line.layout.toUpperCase(),
                            info.layout().name());
                    assertEquals(name + "/" + line.name + ": bits", line.bits, info.bits());
                    assertEquals(name + "/" + line.name + ": planes present", line.planesPresent,
                            info.planesPresent());
                    assertArrayEquals(name + "/" + line.name + ": shape", line.shape, info.shape());
                }
            }
        }
    }

    @Test
    public void decodeEqualsPythonAtEveryPlaneCount() throws IOException {
        for (String name : BUNDLES) {
            try (Bundle bundle = Bundle.open(Fixtures.bundle(name))) {
                bundle.verify(bundle.planesAvailable());
                for (Fixtures.TensorLine line : Fixtures.tensors(name)) {
                    TensorInfo info = bundle.tensor(line.name);
                    for (int planes = 1; planes <= line.planesPresent; planes++) {
                        ByteBuffer decoded = bundle.decode(line.name, planes);
                        assertEquals(ByteOrder.nativeOrder(), decoded.order());
                        assertTrue(decoded.isDirect());
                        Fixtures.assertSameBits(name + "/" + line.name + " with " + planes + " planes",
                                Fixtures.reference(name, line.index, planes), decoded, info.decodedBytes());
                    }
                }
            }
        }
    }

    @Test
    public void refineChainEqualsPython() throws IOException {
        for (String name : BUNDLES) {
            try (Bundle bundle = Bundle.open(Fixtures.bundle(name))) {
                for (Fixtures.TensorLine line : Fixtures.tensors(name)) {
                    TensorInfo info = bundle.tensor(line.name);
                    ByteBuffer decoded = bundle.decode(line.name, 1);
                    for (int planes = 1; planes < line.planesPresent; planes++) {
                        bundle.refine(line.name, decoded, planes);
                        Fixtures.assertSameBits(name + "/" + line.name + " refined to " + (planes + 1),
                                Fixtures.reference(name, line.index, planes + 1), decoded,
                                info.decodedBytes());
                    }
                }
            }
        }
    }

    @Test
    public void decodeIntoLargerBufferKeepsTail() throws IOException {
        try (Bundle bundle = Bundle.open(Fixtures.bundle("cnn"))) {
            TensorInfo info = bundle.tensor("fc.w");
            ByteBuffer out = ByteBuffer.allocateDirect(info.decodedBytes() + 8).order(ByteOrder.nativeOrder());
            out.putFloat(info.decodedBytes(), 42.0f);
            out.putFloat(info.decodedBytes() + 4, -1.5f);

            bundle.decode("fc.w", 3, out);

            Fixtures.assertSameBits("fc.w with 3 planes", Fixtures.reference("cnn", info.index(), 3), out,
                    info.decodedBytes());
            assertEquals(42.0f, out.getFloat(info.decodedBytes()), 0.0f);
            assertEquals(-1.5f, out.getFloat(info.decodedBytes() + 4), 0.0f);
        }
    }

    @Test
    public void prefixFileLimitsPlanes() throws IOException {
        try (Bundle bundle = Bundle.open(Fixtures.bundle("mlp_prefix"))) {
            assertEquals(3, bundle.planesAvailable());
            assertEquals(6, bundle.maxBits());

            IllegalArgumentException tooMany = assertThrows(IllegalArgumentException.class,
                    () -> bundle.decode("w1", 4));
            assertTrue(tooMany.getMessage(), tooMany.getMessage().contains("1..3"));
            ByteBuffer decoded = bundle.decode("w1", 3);
            assertThrows(IllegalArgumentException.class, () -> bundle.refine("w1", decoded, 3));
            IllegalStateException training = assertThrows(IllegalStateException.class,
                    () -> bundle.trainable("w1", 2, UpdateMode.ACCUMULATE));
            assertTrue(training.getMessage(), training.getMessage().contains("complete file"));
        }
    }
}
