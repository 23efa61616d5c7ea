/* AVX2: refine a decoded buffer by one plane, 8 floats per step. */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>

RBE_TARGET_AVX2
void rbe_refine_f32_avx2(const uint16_t *bit, size_t n, float scale, float delta_set,
                         float delta_clear, float *inout)
{
    const __m256 scale_v = _mm256_set1_ps(scale);
    const __m256 set_v = _mm256_set1_ps(delta_set);
    const __m256 clear_v = _mm256_set1_ps(delta_clear);
    const __m256 two = _mm256_set1_ps(2.0f);
    const __m256 half = _mm256_set1_ps(0.5f);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256i bits = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(bit + i)));
        __m256 is_set = _mm256_castsi256_ps(_mm256_cmpgt_epi32(bits, _mm256_setzero_si256()));
        __m256 delta = _mm256_blendv_ps(clear_v, set_v, is_set);

        __m256 doubled = _mm256_mul_ps(_mm256_div_ps(_mm256_loadu_ps(inout + i), scale_v), two);
        doubled = _mm256_round_ps(doubled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 centered = _mm256_mul_ps(_mm256_add_ps(doubled, delta), half);
        _mm256_storeu_ps(inout + i, _mm256_mul_ps(centered, scale_v));
    }

    rbe_refine_f32_scalar(bit + i, n - i, scale, delta_set, delta_clear, inout + i);
}
#else
typedef int rbe_refine_avx2_unused;
#endif
