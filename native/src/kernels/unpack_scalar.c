/* Scalar reference: gather the top planes of a row segment into codes q_P. */
#include "../internal.h"

void rbe_unpack_scalar(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                       unsigned planes_used, uint16_t *codes)
{
    unsigned shift = bits - planes_used;
    unsigned midpoint = planes_used < bits ? 1u << (shift - 1) : 0u;

    for (size_t c = 0; c < nbytes * 8; c++) {
        unsigned top = 0;
        for (unsigned p = 0; p < planes_used; p++) {
            unsigned bit = (plane_rows[p][c / 8] >> (c % 8)) & 1u;
            top = (top << 1) | bit;
        }
        codes[c] = (uint16_t)((top << shift) + midpoint);
    }
}
