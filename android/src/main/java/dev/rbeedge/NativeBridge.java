package dev.rbeedge;

import java.nio.ByteBuffer;

/**
 * The JNI entry points of librbe_edge_jni. Buffers are direct ByteBuffers
 * read from index 0, whatever their position and limit; float buffers must
 * start at a 4-byte aligned address, which ByteBuffer.allocateDirect gives.
 */
final class NativeBridge {
    /** System property naming the library file to load instead of searching java.library.path. */
    static final String LIBRARY_PROPERTY = "rbeedge.library";

    static {
        String path = System.getProperty(LIBRARY_PROPERTY);
        if (path != null && !path.isEmpty()) {
            System.load(path);
        } else {
            System.loadLibrary("rbe_edge_jni");
        }
    }

    private NativeBridge() {
    }

    static native long open(ByteBuffer data, long size);

    static native void close(long handle);

    /** Returns version, tensor count, max bits, planes available, file size, data offset. */
    static native long[] containerInfo(long handle);

    static native byte[] tensorName(long handle, int index);

    /**
     * Returns ndim, layout, shape[4], bits, rows, cols, group size, plane
     * bytes, planes present and the 16 plane offsets.
     */
    static native long[] tensorInfo(long handle, int index);

    static native void verify(long handle, int planes);

    /** Decodes with the container's planes (planeCopy null) or a copy of all B planes. */
    static native void decode(long handle, int index, ByteBuffer planeCopy, int planes,
            ByteBuffer out);

    static native void refine(long handle, int index, ByteBuffer planeCopy, int planesUsed,
            ByteBuffer inout);

    static native void update(long handle, int index, ByteBuffer planeCopy, ByteBuffer grad,
            ByteBuffer accum, int upperPlanes, int mode, float learningRate, long seed,
            long step);

    static native void foldLsb(long handle, int index, ByteBuffer planeCopy, ByteBuffer accum,
            int upperPlanes);

    static native int crc32c(ByteBuffer data, long offset, long length);

    static native void setPlaneCrc(ByteBuffer head, int index, int plane, int crc);

    static native void sealHead(ByteBuffer head);
}
