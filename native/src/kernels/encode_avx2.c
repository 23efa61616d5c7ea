/*
 * AVX2: pack 32 codes per step. Each plane's bit is shifted to bit 15 of its
 * 16-bit lane, a signed pack keeps that sign bit in one byte per code, and
 * movemask collects the 32 sign bits in column order.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>
#include <string.h>

RBE_TARGET_AVX2
static void encode_block32(const uint16_t *codes, unsigned bits, uint8_t *const *plane_rows,
                           size_t byte_offset, size_t store_bytes)
{
    __m256i low = _mm256_loadu_si256((const __m256i *)codes);
    __m256i high = _mm256_loadu_si256((const __m256i *)(codes + 16));

    for (unsigned p = 0; p < bits; p++) {
        __m128i shift = _mm_cvtsi32_si128((int)(15 - (bits - 1 - p)));
        __m256i packed = _mm256_packs_epi16(_mm256_sll_epi16(low, shift),
                                            _mm256_sll_epi16(high, shift));

        /* packs interleaves the 128-bit lanes; restore column order. */
        packed = _mm256_permute4x64_epi64(packed, 0xD8);
        uint32_t mask = (uint32_t)_mm256_movemask_epi8(packed);
        memcpy(plane_rows[p] + byte_offset, &mask, store_bytes);
    }
}

RBE_TARGET_AVX2
void rbe_encode_row_avx2(const uint16_t *codes, size_t cols, unsigned bits,
                         uint8_t *const *plane_rows)
{
    size_t c = 0;

    for (; c + 32 <= cols; c += 32) {
        encode_block32(codes + c, bits, plane_rows, c / 8, 4);
    }

    if (c < cols) {
        uint16_t tail[32] = {0};
        size_t remaining = cols - c;
        memcpy(tail, codes + c, remaining * sizeof(uint16_t));
        encode_block32(tail, bits, plane_rows, c / 8, (remaining + 7) / 8);
    }
}
#else
typedef int rbe_encode_avx2_unused;
#endif
