package dev.rbeedge;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Writes model.rbe with trained planes: the original bytes, with the plane
 * chunks of trainable tensors replaced and their CRC32Cs, the table CRC32C
 * and the header CRC32C recomputed. Offsets do not change, so the result
 * keeps the plane-major order and every prefix property of the original.
 */
final class BundleWriter {
    private static final Logger LOG = Logger.getLogger(BundleWriter.class.getName());

    /** One plane chunk to write in place of the original bytes. */
    private static final class Chunk {
        final long offset;
        final ByteBuffer bytes;

        Chunk(long offset, ByteBuffer bytes) {
            this.offset = offset;
            this.bytes = bytes;
        }
    }

    private BundleWriter() {
    }

    static void write(MappedByteBuffer source, long dataOffset, List<TrainableTensor> trainables,
            File target) throws IOException {
        ByteBuffer head = copyOf(source, 0, (int) dataOffset);
        List<Chunk> chunks = new ArrayList<>();
        for (TrainableTensor trainable : trainables) {
            addPlanes(head, trainable, chunks);
        }
        NativeBridge.sealHead(head);
        chunks.sort(Comparator.comparingLong(chunk -> chunk.offset));

        File folder = target.getAbsoluteFile().getParentFile();
        Path temp = Files.createTempFile(folder.toPath(), target.getName() + ".", ".tmp");
        try {
            writeFile(temp, source, head, chunks);
            checkWritten(temp.toFile());
            Files.move(temp, target.toPath(), StandardCopyOption.ATOMIC_MOVE,
                    StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(temp);
            throw e;
        }
        syncFolder(folder);
    }

    /** Adds the planes of one trainable tensor to chunks and their CRC32Cs to head. */
    private static void addPlanes(ByteBuffer head, TrainableTensor trainable, List<Chunk> chunks) {
        TensorInfo info = trainable.info();
        ByteBuffer planes = trainable.planes();
        int size = (int) info.planeBytes();
        for (int p = 0; p < info.bits(); p++) {
            int crc = NativeBridge.crc32c(planes, (long) p * size, size);
            NativeBridge.setPlaneCrc(head, info.index(), p, crc);

            ByteBuffer plane = planes.duplicate();
            plane.limit(p * size + size);
            plane.position(p * size);
            chunks.add(new Chunk(info.planeOffset(p), plane.slice()));
        }
    }

    private static void writeFile(Path path, MappedByteBuffer source, ByteBuffer head,
            List<Chunk> chunks) throws IOException {
        try (FileChannel out = FileChannel.open(path, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            head.clear();
            writeAll(out, head);
            long cursor = head.capacity();
            for (Chunk chunk : chunks) {
                writeAll(out, view(source, cursor, chunk.offset));
                writeAll(out, chunk.bytes.duplicate());
                cursor = chunk.offset + chunk.bytes.capacity();
            }
            writeAll(out, view(source, cursor, source.capacity()));
            out.force(true);
        }
    }

    /** Opens the written file with the C reader and checks every CRC32C before it replaces target. */
    private static void checkWritten(File file) throws IOException {
        MappedByteBuffer mapped = Bundle.map(file);
        long handle = NativeBridge.open(mapped, mapped.capacity());
        try {
            NativeBridge.verify(handle, (int) NativeBridge.containerInfo(handle)[3]);
        } finally {
            NativeBridge.close(handle);
        }
    }

    /** Flushes the rename to disk. A file system that cannot open a folder costs only durability. */
    private static void syncFolder(File folder) {
        try (FileChannel channel = FileChannel.open(folder.toPath(), StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "could not fsync folder " + folder + " after saving", e);
        }
    }

    private static ByteBuffer copyOf(MappedByteBuffer source, int start, int end) {
        ByteBuffer copy = ByteBuffer.allocateDirect(end - start);
        copy.put(view(source, start, end));
        copy.clear();
        return copy;
    }

    private static ByteBuffer view(MappedByteBuffer source, long start, long end) {
        ByteBuffer view = source.duplicate();
        view.limit((int) end);
        view.position((int) start);
        return view;
    }

    private static void writeAll(FileChannel out, ByteBuffer bytes) throws IOException {
        while (bytes.hasRemaining()) {
            out.write(bytes);
        }
    }
}
