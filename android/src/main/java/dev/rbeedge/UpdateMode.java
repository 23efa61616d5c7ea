package dev.rbeedge;

/** The rule by which an upper-bitplane step turns gradients into moves of the codes. */
public enum UpdateMode {
    /** An int8 accumulator per weight keeps the remainders smaller than one step. */
    ACCUMULATE(0),
    /** Stateless: moves one step against the gradient with a probability that grows with it. */
    SIGN(1);

    final int code;

    UpdateMode(int code) {
        this.code = code;
    }
}
