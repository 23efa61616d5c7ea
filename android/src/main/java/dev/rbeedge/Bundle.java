package dev.rbeedge;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An opened bundle folder: its model.rbe memory-mapped and validated by the
 * C core. Decodes tensors at any number of planes into direct ByteBuffers
 * for onnxruntime, refines them plane by plane, and trains the upper planes
 * of chosen tensors ({@link #trainable}), which {@link #save} writes back
 * atomically. Methods are synchronized, so one bundle may be shared between
 * threads; every method except {@link #close} throws IllegalStateException
 * once the bundle is closed.
 */
public final class Bundle implements AutoCloseable {
    /** The weights file inside a bundle folder. */
    public static final String MODEL_FILE = "model.rbe";

    private final File modelFile;
    private MappedByteBuffer data;
    private long handle;
    private final long[] containerInfo;
    private final List<TensorInfo> tensors;
    private final Map<String, TensorInfo> byName;
    private final Map<String, TrainableTensor> trainables = new LinkedHashMap<>();

    private Bundle(File modelFile, MappedByteBuffer data, long handle) {
        this.modelFile = modelFile;
        this.data = data;
        this.handle = handle;
        this.containerInfo = NativeBridge.containerInfo(handle);

        List<TensorInfo> list = new ArrayList<>();
        Map<String, TensorInfo> names = new LinkedHashMap<>();
        for (int i = 0; i < containerInfo[1]; i++) {
            String name = new String(NativeBridge.tensorName(handle, i), StandardCharsets.UTF_8);
            TensorInfo info = new TensorInfo(i, name, NativeBridge.tensorInfo(handle, i));
            list.add(info);
            // The C reader addresses tensors by index and does not reject repeated names.
            if (names.put(name, info) != null) {
                throw new RbeException(RbeException.ERR_FORMAT, modelFile + ": tensor name '" + name
                        + "' appears twice in the table; pack the model again");
            }
        }
        this.tensors = Collections.unmodifiableList(list);
        this.byName = names;
    }

    /**
     * Opens the bundle folder {@code folder} (or a model.rbe file directly)
     * and validates its header and tensor table.
     *
     * @throws IOException if the file cannot be read or mapped
     * @throws RbeException if model.rbe is malformed, truncated or from a newer version
     */
    public static Bundle open(File folder) throws IOException {
        if (folder == null) {
            throw new NullPointerException("the bundle folder is null");
        }
        File model = folder.isDirectory() ? new File(folder, MODEL_FILE) : folder;
        MappedByteBuffer mapped = map(model);
        long handle;
        try {
            handle = NativeBridge.open(mapped, mapped.capacity());
        } catch (RbeException e) {
            throw new RbeException(e.status(), model + ": " + e.getMessage());
        }

        try {
            return new Bundle(model, mapped, handle);
        } catch (RuntimeException e) {
            NativeBridge.close(handle);
            throw e;
        }
    }

    static MappedByteBuffer map(File file) throws IOException {
        if (!file.isFile()) {
            throw new IOException(file + ": not found; a bundle folder must contain " + MODEL_FILE);
        }
        try (FileChannel channel = FileChannel.open(file.toPath(), StandardOpenOption.READ)) {
            long size = channel.size();
            if (size > Integer.MAX_VALUE) {
                throw new IOException(file + ": " + size + " bytes; files above 2 GiB are not supported");
            }
            MappedByteBuffer mapped = channel.map(FileChannel.MapMode.READ_ONLY, 0, size);
            mapped.order(ByteOrder.LITTLE_ENDIAN);
            return mapped;
        }
    }

    /** Returns the model.rbe file this bundle reads. */
    public File modelFile() {
        return modelFile;
    }

    /** Returns the planes present in model.rbe: the largest B unless the file is a prefix. */
    public synchronized int planesAvailable() {
        checkOpen();
        return (int) containerInfo[3];
    }

    /** Returns the largest B of any tensor. */
    public synchronized int maxBits() {
        checkOpen();
        return (int) containerInfo[2];
    }

    /** Returns every tensor, in table order. */
    public synchronized List<TensorInfo> tensors() {
        checkOpen();
        return tensors;
    }

    /** Returns the tensor called {@code name}, or throws IllegalArgumentException naming the file. */
    public synchronized TensorInfo tensor(String name) {
        checkOpen();
        TensorInfo info = byName.get(name);
        if (info == null) {
            throw new IllegalArgumentException("tensor '" + name + "' not found in " + modelFile
                    + "; its tensors are " + byName.keySet());
        }
        return info;
    }

    /** Checks the CRC32C of the scales, zero points and planes 0..planes-1 of every tensor. */
    public synchronized void verify(int planes) {
        checkOpen();
        try {
            NativeBridge.verify(handle, planes);
        } catch (RbeException e) {
            throw new RbeException(e.status(), modelFile + ": " + e.getMessage());
        }
    }

    /**
     * Decodes tensor {@code name} with its top {@code planes} planes into a
     * new direct float32 buffer in native byte order, in the tensor's
     * original shape (row-major): what onnxruntime's OnnxTensor.createTensor takes.
     */
    public ByteBuffer decode(String name, int planes) {
        ByteBuffer out = ByteBuffer.allocateDirect(tensor(name).decodedBytes());
        out.order(ByteOrder.nativeOrder());
        decode(name, planes, out);
        return out;
    }

    /** Decodes into {@code out}, a direct buffer in native byte order of at least decodedBytes(). */
    public synchronized void decode(String name, int planes, ByteBuffer out) {
        TensorInfo info = tensor(name);
        checkFloatBuffer(out, info, "decode");
        checkPlanes(info, planes, "decode");
        try {
            NativeBridge.decode(handle, info.index(), planeCopy(name), planes, out);
        } catch (RbeException e) {
            throw tensorError(e, info, "decode");
        }
    }

    /**
     * Refines {@code decoded}, the result of decoding with {@code planesUsed}
     * planes, in place into the decode with planesUsed + 1 planes, reading
     * one more plane. Tensors of layout KN take a temporary copy of the tensor.
     */
    public synchronized void refine(String name, ByteBuffer decoded, int planesUsed) {
        TensorInfo info = tensor(name);
        checkFloatBuffer(decoded, info, "refine");
        if (planesUsed < 1) {
            throw new IllegalArgumentException("refine of tensor '" + name + "' needs planesUsed >= 1, got "
                    + planesUsed);
        }
        checkPlanes(info, planesUsed + 1, "refine");
        try {
            NativeBridge.refine(handle, info.index(), planeCopy(name), planesUsed, decoded);
        } catch (RbeException e) {
            throw tensorError(e, info, "refine");
        }
    }

    /**
     * Makes tensor {@code name} trainable: copies its B planes into memory,
     * where updates change them, and from then on decode, refine and save
     * use that copy. A repeated call with the same arguments returns the
     * same object. Needs every plane of the tensor in model.rbe.
     */
    public synchronized TrainableTensor trainable(String name, int upperPlanes, UpdateMode mode) {
        TensorInfo info = tensor(name);
        if (mode == null) {
            throw new NullPointerException("the update mode is null");
        }
        if (upperPlanes < 1 || upperPlanes > info.bits()) {
            throw new IllegalArgumentException("upperPlanes=" + upperPlanes + " is out of range for tensor '"
                    + name + "': expected 1.." + info.bits());
        }
        TrainableTensor existing = trainables.get(name);
        if (existing != null) {
            if (existing.upperPlanes() != upperPlanes || existing.mode() != mode) {
                throw new IllegalArgumentException("tensor '" + name + "' is already trainable with upperPlanes="
                        + existing.upperPlanes() + " and mode " + existing.mode());
            }
            return existing;
        }
        if (info.planesPresent() < info.bits()) {
            throw new IllegalStateException("tensor '" + name + "' has " + info.planesPresent() + " of its "
                    + info.bits() + " planes in " + modelFile + "; training needs the complete file");
        }

        TrainableTensor created = new TrainableTensor(this, info, copyPlanes(info), upperPlanes, mode);
        trainables.put(name, created);
        return created;
    }

    /** Writes model.rbe with the trained planes over the opened file, atomically. */
    public void save() throws IOException {
        saveTo(modelFile);
    }

    /**
     * Writes the model with the trained planes to {@code target}: first to a
     * temporary file in the same folder, which is flushed, checked by the C
     * reader and renamed over target, so target contains the old or the new
     * model and never a partial one.
     */
    public synchronized void saveTo(File target) throws IOException {
        checkOpen();
        if (target == null) {
            throw new NullPointerException("the target file is null");
        }
        BundleWriter.write(data, containerInfo[5], new ArrayList<>(trainables.values()), target);
    }

    /** Releases the native handle. The mapping itself is released by the garbage collector. */
    @Override
    public synchronized void close() {
        if (handle != 0) {
            NativeBridge.close(handle);
            handle = 0;
            data = null;
            for (TrainableTensor trainable : trainables.values()) {
                trainable.release();
            }
            trainables.clear();
        }
    }

    synchronized long handle() {
        checkOpen();
        return handle;
    }

    private void checkOpen() {
        if (handle == 0) {
            throw new IllegalStateException("the bundle " + modelFile + " is closed");
        }
    }

    private ByteBuffer planeCopy(String name) {
        TrainableTensor trainable = trainables.get(name);
        return trainable == null ? null : trainable.planes();
    }

    private ByteBuffer copyPlanes(TensorInfo info) {
        long bytes = info.planeBytes() * info.bits();
        if (bytes > Integer.MAX_VALUE) {
            throw new UnsupportedOperationException("tensor '" + info.name() + "' has " + bytes
                    + " bytes of planes; a ByteBuffer holds at most 2 GiB");
        }
        ByteBuffer copy = ByteBuffer.allocateDirect((int) bytes);
        for (int p = 0; p < info.bits(); p++) {
            ByteBuffer plane = data.duplicate();
            int start = (int) info.planeOffset(p);
            plane.limit(start + (int) info.planeBytes());
            plane.position(start);
            copy.put(plane);
        }
        copy.clear();
        return copy;
    }

    private void checkPlanes(TensorInfo info, int planes, String operation) {
        int limit = trainables.containsKey(info.name()) ? info.bits() : info.planesPresent();
        if (planes < 1 || planes > limit) {
            throw new IllegalArgumentException(operation + " of tensor '" + info.name() + "' needs "
                    + planes + " planes; " + modelFile + " has 1.." + limit + " for this tensor");
        }
    }

    static void checkFloatBuffer(ByteBuffer buffer, TensorInfo info, String operation) {
        if (buffer == null) {
            throw new NullPointerException(operation + " of tensor '" + info.name() + "': the buffer is null");
        }
        if (!buffer.isDirect() || buffer.isReadOnly() || buffer.order() != ByteOrder.nativeOrder()) {
            throw new IllegalArgumentException(operation + " of tensor '" + info.name()
                    + "' needs a writable direct ByteBuffer in native byte order "
                    + "(ByteBuffer.allocateDirect(n).order(ByteOrder.nativeOrder()))");
        }
        if (buffer.capacity() < info.decodedBytes()) {
            throw new IllegalArgumentException(operation + " of tensor '" + info.name() + "' needs "
                    + info.decodedBytes() + " bytes; the buffer has " + buffer.capacity());
        }
    }

    RbeException tensorError(RbeException e, TensorInfo info, String operation) {
        return new RbeException(e.status(), operation + " of tensor '" + info.name() + "' in "
                + modelFile + ": " + e.getMessage());
    }
}
