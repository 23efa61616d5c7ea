/* Scalar reference: pack one row of codes into bitplanes. */
#include <string.h>

#include "../internal.h"

void rbe_encode_row_scalar(const uint16_t *codes, size_t cols, unsigned bits,
                           uint8_t *const *plane_rows)
{
    size_t nbytes = (cols + 7) / 8;

    for (unsigned p = 0; p < bits; p++) {
        memset(plane_rows[p], 0, nbytes);
    }

    for (size_t c = 0; c < cols; c++) {
        for (unsigned p = 0; p < bits; p++) {
            unsigned bit = (codes[c] >> (bits - 1 - p)) & 1u;
            plane_rows[p][c / 8] |= (uint8_t)(bit << (c % 8));
        }
    }
}
