/*
 * AVX2: gather the top planes into codes. Each plane byte is broadcast to
 * the lanes of its 8 columns, each lane tests its own bit, and the code
 * accumulates as acc = 2 * acc + bit (the compare yields -1 for a set bit).
 * Codes of up to 8 bits accumulate in 8-bit lanes, 32 columns per step;
 * wider codes use 16-bit lanes, 16 columns per step.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>
#include <string.h>

RBE_TARGET_AVX2
static void unpack_u8_lanes(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                            unsigned planes_used, uint16_t *codes)
{
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i select = _mm256_set1_epi64x(0x8040201008040201LL);
    const __m128i shift = _mm_cvtsi32_si128((int)(bits - planes_used));
    const __m256i midpoint = _mm256_set1_epi16(
        (short)(planes_used < bits ? 1 << (bits - planes_used - 1) : 0));

    for (size_t byte = 0; byte < nbytes; byte += 4) {
        __m256i acc = _mm256_setzero_si256();

        for (unsigned p = 0; p < planes_used; p++) {
            uint32_t word;
            memcpy(&word, plane_rows[p] + byte, sizeof(word));
            __m256i lanes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)word), spread);
            __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(lanes, select), select);
            acc = _mm256_sub_epi8(_mm256_add_epi8(acc, acc), set);
        }

        __m256i low = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(acc));
        __m256i high = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(acc, 1));
        low = _mm256_add_epi16(_mm256_sll_epi16(low, shift), midpoint);
        high = _mm256_add_epi16(_mm256_sll_epi16(high, shift), midpoint);
        _mm256_storeu_si256((__m256i *)(codes + byte * 8), low);
        _mm256_storeu_si256((__m256i *)(codes + byte * 8 + 16), high);
    }
}

RBE_TARGET_AVX2
static void unpack_u16_lanes(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                             unsigned planes_used, uint16_t *codes)
{
    const __m256i spread = _mm256_setr_epi8(0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1,
                                            0, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1,
                                            1, -1, 1, -1);
    const __m256i select = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128,
                                             1, 2, 4, 8, 16, 32, 64, 128);
    const __m128i shift = _mm_cvtsi32_si128((int)(bits - planes_used));
    const __m256i midpoint = _mm256_set1_epi16(
        (short)(planes_used < bits ? 1 << (bits - planes_used - 1) : 0));

    for (size_t byte = 0; byte < nbytes; byte += 2) {
        __m256i acc = _mm256_setzero_si256();

        for (unsigned p = 0; p < planes_used; p++) {
            uint16_t pair;
            memcpy(&pair, plane_rows[p] + byte, sizeof(pair));
            __m256i lanes = _mm256_shuffle_epi8(_mm256_set1_epi16((short)pair), spread);
            __m256i set = _mm256_cmpeq_epi16(_mm256_and_si256(lanes, select), select);
            acc = _mm256_sub_epi16(_mm256_add_epi16(acc, acc), set);
        }

        acc = _mm256_add_epi16(_mm256_sll_epi16(acc, shift), midpoint);
        _mm256_storeu_si256((__m256i *)(codes + byte * 8), acc);
    }
}

void rbe_unpack_avx2(const uint8_t *const *plane_rows, size_t nbytes, unsigned bits,
                     unsigned planes_used, uint16_t *codes)
{
    if (planes_used <= 8) {
        unpack_u8_lanes(plane_rows, nbytes, bits, planes_used, codes);
    } else {
        unpack_u16_lanes(plane_rows, nbytes, bits, planes_used, codes);
    }
}
#else
typedef int rbe_unpack_avx2_unused;
#endif
