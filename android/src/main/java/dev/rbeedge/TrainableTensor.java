package dev.rbeedge;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * A tensor whose upper planes are being trained. It owns a copy of the
 * tensor's B planes and, in ACCUMULATE mode, an int8 accumulator of one
 * byte per weight. Create it with {@link Bundle#trainable}; it is usable
 * until the bundle is closed.
 */
public final class TrainableTensor {
    private final Bundle bundle;
    private final TensorInfo info;
    private final int upperPlanes;
    private final UpdateMode mode;
    private ByteBuffer planes;
    private ByteBuffer accumulator;
    private ByteBuffer gradientCopy;

    TrainableTensor(Bundle bundle, TensorInfo info, ByteBuffer planes, int upperPlanes,
            UpdateMode mode) {
        this.bundle = bundle;
        this.info = info;
        this.planes = planes;
        this.upperPlanes = upperPlanes;
        this.mode = mode;
        if (mode == UpdateMode.ACCUMULATE) {
            // One byte per weight: decodedBytes() is four bytes per weight.
            this.accumulator = ByteBuffer.allocateDirect(info.decodedBytes() / Float.BYTES);
        }
    }

    public TensorInfo info() {
        return info;
    }

    /** U, the number of top planes that updates change. */
    public int upperPlanes() {
        return upperPlanes;
    }

    public UpdateMode mode() {
        return mode;
    }

    /**
     * Applies one upper-bitplane step. {@code gradient} is the gradient of
     * the loss with respect to the decoded tensor, float32 in the tensor's
     * original shape, as a direct ByteBuffer in native byte order. The same
     * seed and step repeat the same result; use a new step number for every
     * step. A gradient with NaN or infinite values is rejected before any
     * plane changes.
     */
    public void update(ByteBuffer gradient, float learningRate, long seed, long step) {
        synchronized (bundle) {
            Bundle.checkFloatBuffer(gradient, info, "update");
            try {
                NativeBridge.update(bundle.handle(), info.index(), planes(), gradient, accumulator,
                        upperPlanes, mode.code, learningRate, seed, step);
            } catch (RbeException e) {
                throw bundle.tensorError(e, info, "update");
            }
        }
    }

    /**
     * Applies one step from a FloatBuffer (onnxruntime's OnnxTensor.getFloatBuffer()
     * returns one), reading it from index 0; the values are copied first.
     */
    public void update(FloatBuffer gradient, float learningRate, long seed, long step) {
        if (gradient == null) {
            throw new NullPointerException("update of tensor '" + info.name() + "': the gradient is null");
        }
        long count = info.elementCount();
        if (gradient.capacity() < count) {
            throw new IllegalArgumentException("update of tensor '" + info.name() + "' needs " + count
                    + " gradient values; the buffer has " + gradient.capacity());
        }
        synchronized (bundle) {
            ByteBuffer copy = gradientCopy();
            FloatBuffer source = gradient.duplicate();
            source.clear();
            source.limit((int) count);
            copy.asFloatBuffer().put(source);
            update(copy, learningRate, seed, step);
        }
    }

    /** Applies one step from a float array in the tensor's original shape, row-major. */
    public void update(float[] gradient, float learningRate, long seed, long step) {
        if (gradient == null) {
            throw new NullPointerException("update of tensor '" + info.name() + "': the gradient is null");
        }
        update(FloatBuffer.wrap(gradient), learningRate, seed, step);
    }

    /**
     * Re-estimates the lower planes: folds the accumulated remainders into the
     * codes, so the adapted tensor keeps full precision. Call it periodically
     * and at the end of training. SIGN mode keeps no remainders, so there it
     * does nothing.
     */
    public void foldLsb() {
        synchronized (bundle) {
            long handle = bundle.handle();
            if (accumulator == null) {
                return;
            }
            try {
                NativeBridge.foldLsb(handle, info.index(), planes(), accumulator, upperPlanes);
            } catch (RbeException e) {
                throw bundle.tensorError(e, info, "LSB re-estimation");
            }
        }
    }

    /** Returns a read-only view of the int8 accumulator in [rows, cols] order, or null in SIGN mode. */
    public ByteBuffer accumulator() {
        synchronized (bundle) {
            bundle.handle();
            return accumulator == null ? null : accumulator.asReadOnlyBuffer();
        }
    }

    /** Returns the B planes, plane 0 first, each info().planeBytes() long. */
    ByteBuffer planes() {
        if (planes == null) {
            throw new IllegalStateException("tensor '" + info.name() + "' belongs to a closed bundle");
        }
        return planes;
    }

    void release() {
        planes = null;
        accumulator = null;
        gradientCopy = null;
    }

    private ByteBuffer gradientCopy() {
        if (gradientCopy == null) {
            gradientCopy = ByteBuffer.allocateDirect(info.decodedBytes()).order(ByteOrder.nativeOrder());
        }
        return gradientCopy;
    }
}
