/*
 * Scalar reference of LSB folding. The SIMD kernels compute the same
 * integers lane by lane, so they match it exactly.
 */
#include "../internal.h"

/*
 * Moves each accumulator into its code: q += round(accum * 2^(B-U) / 128)
 * with halves toward zero, keeping in accum the remainder truncated to
 * accumulator units, which is at most half a code, so a second fold
 * without steps in between changes nothing. A clamped code drops its
 * remainder.
 *
 * Both divisions are by powers of two with a known quotient form, so they
 * are shifts: with s = B - U and RBE_ACCUM_ONE = 2^7, the move is
 * accum / 2^(7-s) rounded when s < 7 (the remainder is exact in
 * accumulator units), and accum * 2^(s-7) with no remainder otherwise.
 */
void rbe_fold_scalar(uint16_t *codes, int8_t *accum, size_t n, unsigned bits,
                     unsigned upper_planes)
{
    unsigned shift = bits - upper_planes;
    unsigned down = shift < RBE_ACCUM_SHIFT ? RBE_ACCUM_SHIFT - shift : 0;
    int32_t up = shift >= RBE_ACCUM_SHIFT ? (int32_t)1 << (shift - RBE_ACCUM_SHIFT) : 1;
    int32_t half = (((int32_t)1 << down) - 1) / 2;
    int32_t max_code = (1 << bits) - 1;

    for (size_t i = 0; i < n; i++) {
        int32_t value = accum[i];
        int32_t magnitude = value < 0 ? -value : value;
        int32_t move = ((magnitude + half) >> down) * up;
        int32_t delta = value < 0 ? -move : move;
        int32_t remainder = shift >= RBE_ACCUM_SHIFT ? 0 : value - delta * ((int32_t)1 << down);
        int32_t code = (int32_t)codes[i] + delta;
        int32_t clamped = code < 0 ? 0 : (code > max_code ? max_code : code);

        codes[i] = (uint16_t)clamped;
        accum[i] = (int8_t)(clamped == code ? remainder : 0);
    }
}

