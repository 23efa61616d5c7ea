/* AVX2: codes to float32 (8 per step) and to signed 8-bit codes (32 per step). */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>

RBE_TARGET_AVX2
void rbe_dequant_f32_avx2(const uint16_t *codes, size_t n, float scale, float zero,
                          float *out)
{
    const __m256 scale_v = _mm256_set1_ps(scale);
    const __m256 zero_v = _mm256_set1_ps(zero);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m128i packed = _mm_loadu_si128((const __m128i *)(codes + i));
        __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(packed));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_sub_ps(q, zero_v), scale_v));
    }

    rbe_dequant_f32_scalar(codes + i, n - i, scale, zero, out + i);
}

RBE_TARGET_AVX2
void rbe_dequant_i8_avx2(const uint16_t *codes, size_t n, unsigned bits, int8_t *out)
{
    const __m256i offset = _mm256_set1_epi16((short)(1 << (bits - 1)));
    size_t i = 0;

    for (; i + 32 <= n; i += 32) {
        __m256i low = _mm256_loadu_si256((const __m256i *)(codes + i));
        __m256i high = _mm256_loadu_si256((const __m256i *)(codes + i + 16));
        __m256i packed = _mm256_packs_epi16(_mm256_sub_epi16(low, offset),
                                            _mm256_sub_epi16(high, offset));
        packed = _mm256_permute4x64_epi64(packed, 0xD8);
        _mm256_storeu_si256((__m256i *)(out + i), packed);
    }

    rbe_dequant_i8_scalar(codes + i, n - i, bits, out + i);
}
#else
typedef int rbe_dequant_avx2_unused;
#endif
