package dev.rbeedge;

import java.util.Arrays;

/** The shape and packing of one tensor of a bundle. */
public final class TensorInfo {
    private final int index;
    private final String name;
    private final long[] shape;
    private final TensorLayout layout;
    private final int bits;
    private final long rows;
    private final long cols;
    private final long groupSize;
    private final long planeBytes;
    private final int planesPresent;
    private final long[] planeOffsets;

    TensorInfo(int index, String name, long[] fields) {
        this.index = index;
        this.name = name;
        this.shape = Arrays.copyOfRange(fields, 2, 2 + (int) fields[0]);
        this.layout = TensorLayout.fromCode(fields[1]);
        this.bits = (int) fields[6];
        this.rows = fields[7];
        this.cols = fields[8];
        this.groupSize = fields[9];
        this.planeBytes = fields[10];
        this.planesPresent = (int) fields[11];
        this.planeOffsets = Arrays.copyOfRange(fields, 12, 12 + bits);
    }

    /** Position of the tensor in the model.rbe table. */
    public int index() {
        return index;
    }

    public String name() {
        return name;
    }

    /** Returns the original shape, which onnxruntime expects for the decoded tensor. */
    public long[] shape() {
        return shape.clone();
    }

    public TensorLayout layout() {
        return layout;
    }

    /** B, the code width and the number of planes of the full tensor. */
    public int bits() {
        return bits;
    }

    /** Rows of the packed matrix (output channels). */
    public long rows() {
        return rows;
    }

    /** Columns of the packed matrix (the reduction dimension K). */
    public long cols() {
        return cols;
    }

    public long groupSize() {
        return groupSize;
    }

    /** Bytes of one plane in model.rbe. */
    public long planeBytes() {
        return planeBytes;
    }

    /** Planes of this tensor present in the opened file: B unless the file is a prefix. */
    public int planesPresent() {
        return planesPresent;
    }

    long planeOffset(int plane) {
        return planeOffsets[plane];
    }

    public long elementCount() {
        return rows * cols;
    }

    /** Bytes of the decoded float32 tensor, the size a decode buffer needs. */
    public int decodedBytes() {
        long bytes = elementCount() * Float.BYTES;
        if (bytes > Integer.MAX_VALUE) {
            throw new UnsupportedOperationException("tensor '" + name + "' decodes to " + bytes
                    + " bytes; a ByteBuffer holds at most 2 GiB");
        }
        return (int) bytes;
    }

    @Override
    public String toString() {
        return "TensorInfo{" + name + " " + Arrays.toString(shape) + " " + layout + " bits="
                + bits + " groupSize=" + groupSize + "}";
    }
}
