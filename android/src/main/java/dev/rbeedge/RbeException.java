package dev.rbeedge;

/** An error reported by the rbe_edge C core, with its status code and message. */
public class RbeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** Status codes of the C core (rbe_status in rbe_edge.h) that callers may act on. */
    public static final int ERR_PLANES = 4;
    public static final int ERR_SCALE = 7;
    public static final int ERR_FORMAT = 11;
    public static final int ERR_VERSION = 12;
    public static final int ERR_TRUNCATED = 13;
    public static final int ERR_CHECKSUM = 14;
    public static final int ERR_VALUE = 15;

    private final int status;

    public RbeException(int status, String message) {
        super(message);
        this.status = status;
    }

    /** Returns the rbe_status code of the failed call. */
    public int status() {
        return status;
    }
}
