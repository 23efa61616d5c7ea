/*
 * AVX2 LSB folding: eight weights per step in 32-bit lanes, the same
 * integer operations as rbe_fold_scalar, so results match it exactly.
 */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>
#include <string.h>

/* The loop-invariant operands of one fold call. */
typedef struct fold_constants {
    __m128i down;           /* right shift that divides by 2^(7-s), or 0 */
    __m128i up;             /* left shift that multiplies by 2^(s-7), or 0 */
    __m256i half;
    __m256i max_code;
    __m256i keep_remainder; /* all ones when s < 7, else zero */
} fold_constants;

RBE_TARGET_AVX2
static void fold8(const fold_constants *k, uint16_t *codes, int8_t *accum)
{
    int64_t accum_bytes;
    memcpy(&accum_bytes, accum, 8);
    __m256i value = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(accum_bytes));
    __m256i code = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)codes));

    __m256i magnitude = _mm256_abs_epi32(value);
    __m256i move = _mm256_sll_epi32(
        _mm256_srl_epi32(_mm256_add_epi32(magnitude, k->half), k->down), k->up);
    /* sign_epi32 negates where value < 0; value == 0 gives move == 0 anyway. */
    __m256i delta = _mm256_sign_epi32(move, value);
    __m256i remainder = _mm256_and_si256(
        _mm256_sub_epi32(value, _mm256_sll_epi32(delta, k->down)), k->keep_remainder);
    __m256i moved = _mm256_add_epi32(code, delta);
    __m256i clamped = _mm256_min_epi32(_mm256_max_epi32(moved, _mm256_setzero_si256()),
                                       k->max_code);
    remainder = _mm256_and_si256(remainder, _mm256_cmpeq_epi32(clamped, moved));

    /* Pack 32-bit lanes down; packs work per 128-bit half, so permute back. */
    __m256i codes16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(clamped, clamped), 0xD8);
    _mm_storeu_si128((__m128i *)codes, _mm256_castsi256_si128(codes16));
    __m256i accum16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(remainder, remainder), 0xD8);
    __m128i accum8 = _mm_packs_epi16(_mm256_castsi256_si128(accum16),
                                     _mm256_castsi256_si128(accum16));
    accum_bytes = _mm_cvtsi128_si64(accum8);
    memcpy(accum, &accum_bytes, 8);
}

RBE_TARGET_AVX2
void rbe_fold_avx2(uint16_t *codes, int8_t *accum, size_t n, unsigned bits,
                   unsigned upper_planes)
{
    unsigned shift = bits - upper_planes;
    unsigned down = shift < RBE_ACCUM_SHIFT ? RBE_ACCUM_SHIFT - shift : 0;
    unsigned up = shift >= RBE_ACCUM_SHIFT ? shift - RBE_ACCUM_SHIFT : 0;
    fold_constants k;
    size_t i = 0;

    k.down = _mm_cvtsi32_si128((int)down);
    k.up = _mm_cvtsi32_si128((int)up);
    k.half = _mm256_set1_epi32((((int32_t)1 << down) - 1) / 2);
    k.max_code = _mm256_set1_epi32((1 << bits) - 1);
    k.keep_remainder = _mm256_set1_epi32(shift < RBE_ACCUM_SHIFT ? -1 : 0);
    for (; i + 8 <= n; i += 8) {
        fold8(&k, codes + i, accum + i);
    }
    rbe_fold_scalar(codes + i, accum + i, n - i, bits, upper_planes);
}
#else
typedef int rbe_fold_avx2_unused;
#endif
