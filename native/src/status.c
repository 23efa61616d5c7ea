/* Human-readable messages for rbe_status codes. */
#include "rbe_edge.h"

const char *rbe_status_message(rbe_status status)
{
    switch (status) {
    case RBE_OK:
        return "success";
    case RBE_ERR_NULL:
        return "a required pointer argument is NULL";
    case RBE_ERR_SIZE:
        return "a size is zero or its byte count overflows size_t";
    case RBE_ERR_BITS:
        return "bits must be between 2 and 16";
    case RBE_ERR_PLANES:
        return "the number of planes is outside the valid range for this call";
    case RBE_ERR_GROUP:
        return "group_size must be positive and divide cols";
    case RBE_ERR_CODE_RANGE:
        return "a code does not fit in the given number of bits";
    case RBE_ERR_SCALE:
        return "a scale is below 2 * FLT_MIN or not finite, or scale * max|q - zero| overflows";
    case RBE_ERR_ZERO:
        return "a zero point is not an integer between 0 and 2^bits - 1";
    case RBE_ERR_ISA:
        return "the requested instruction set is unknown or not available on this CPU";
    case RBE_ERR_UNSUPPORTED:
        return "the operation does not support these arguments";
    case RBE_ERR_FORMAT:
        return "the container is malformed (bad magic, offset, shape or size)";
    case RBE_ERR_VERSION:
        return "the container was written by a newer format version; upgrade rbe_edge";
    case RBE_ERR_TRUNCATED:
        return "the container is truncated: it ends before the data it declares";
    case RBE_ERR_CHECKSUM:
        return "a CRC32C checksum of the container does not match: the file is corrupted";
    case RBE_ERR_VALUE:
        return "a float argument is NaN, infinite or out of range";
    case RBE_ERR_MEMORY:
        return "out of memory: a working buffer could not be allocated";
    }
    return "unknown rbe_status code";
}
