package dev.rbeedge;

/** The mapping of a tensor's axes to the rows and columns of its packed matrix. */
public enum TensorLayout {
    /** A 2-D MatMul right operand [K, N]: N rows of K columns. */
    KN,
    /** The first axis is rows and the other axes are flattened into columns. */
    NK,
    /** A 1-D tensor stored as one row. */
    VECTOR;

    static TensorLayout fromCode(long code) {
        if (code < 0 || code >= values().length) {
            throw new IllegalStateException("unknown tensor layout code " + code);
        }
        return values()[(int) code];
    }
}
