/* AVX2 upper-bitplane update, 8 weights per step; see update_scalar.c. */
#include "../internal.h"

#ifdef RBE_HAVE_X86
#include <immintrin.h>

RBE_TARGET_AVX2
static __m256 uniform8(uint32_t key, uint32_t first_index)
{
    __m256i x = _mm256_add_epi32(_mm256_set1_epi32((int)first_index),
                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    x = _mm256_xor_si256(x, _mm256_set1_epi32((int)key));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x85ebca6bu));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 13));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0xc2b2ae35u));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    __m256 bits24 = _mm256_cvtepi32_ps(_mm256_srli_epi32(x, 8));
    return _mm256_mul_ps(bits24, _mm256_set1_ps(1.0f / 16777216.0f));
}

RBE_TARGET_AVX2
static __m256i sign_steps(__m256 delta, __m256 uniform)
{
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    __m256 chance = _mm256_min_ps(_mm256_andnot_ps(sign_bit, delta), _mm256_set1_ps(1.0f));
    __m256i moves = _mm256_castps_si256(_mm256_cmp_ps(uniform, chance, _CMP_LT_OQ));
    __m256i positive = _mm256_castps_si256(_mm256_cmp_ps(delta, _mm256_setzero_ps(),
                                                         _CMP_GT_OQ));
    /* +1 where delta > 0, -1 elsewhere, kept only where the draw moves. */
    __m256i direction = _mm256_sub_epi32(_mm256_and_si256(positive, _mm256_set1_epi32(2)),
                                         _mm256_set1_epi32(1));
    return _mm256_and_si256(moves, direction);
}

RBE_TARGET_AVX2
static __m256i accumulate_steps(__m256 delta, __m256 uniform, __m256i *accum)
{
    const __m256 limit = _mm256_set1_ps(RBE_ACCUM_LIMIT);
    __m256 scaled = _mm256_mul_ps(delta, _mm256_set1_ps((float)RBE_ACCUM_ONE));
    scaled = _mm256_min_ps(_mm256_max_ps(scaled, _mm256_sub_ps(_mm256_setzero_ps(), limit)),
                           limit);
    __m256i rounded = _mm256_cvttps_epi32(_mm256_floor_ps(_mm256_add_ps(scaled, uniform)));
    __m256i total = _mm256_add_epi32(*accum, rounded);

    /* Division by 128 truncating toward zero, as C's integer division does. */
    __m256i bias = _mm256_and_si256(_mm256_srai_epi32(total, 31), _mm256_set1_epi32(127));
    __m256i steps = _mm256_srai_epi32(_mm256_add_epi32(total, bias), 7);
    *accum = _mm256_sub_epi32(total, _mm256_slli_epi32(steps, 7));
    return steps;
}

RBE_TARGET_AVX2
void rbe_update_upper_avx2(const rbe_update_segment *segment, uint16_t *upper,
                           const float *grad, int8_t *accum, size_t n)
{
    const __m256 factor = _mm256_set1_ps(segment->factor);
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    const __m256i max_upper = _mm256_set1_epi32((int)segment->max_upper);
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        __m256 uniform = uniform8(segment->key, segment->first_index + (uint32_t)i);
        __m256 delta = _mm256_xor_ps(_mm256_mul_ps(_mm256_loadu_ps(grad + i), factor), sign_bit);
        __m256i steps;

        if (segment->mode == RBE_UPDATE_SIGN) {
            steps = sign_steps(delta, uniform);
        } else {
            __m256i state = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(accum + i)));
            steps = accumulate_steps(delta, uniform, &state);
            __m128i words = _mm_packs_epi32(_mm256_castsi256_si128(state),
                                            _mm256_extracti128_si256(state, 1));
            _mm_storel_epi64((__m128i *)(accum + i), _mm_packs_epi16(words, words));
        }

        __m256i current = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(upper + i)));
        __m256i moved = _mm256_add_epi32(current, steps);
        moved = _mm256_min_epi32(_mm256_max_epi32(moved, _mm256_setzero_si256()), max_upper);
        _mm_storeu_si128((__m128i *)(upper + i),
                         _mm_packus_epi32(_mm256_castsi256_si128(moved),
                                          _mm256_extracti128_si256(moved, 1)));
    }

    rbe_update_segment rest = *segment;
    rest.first_index += (uint32_t)i;
    rbe_update_upper_scalar(&rest, upper + i, grad + i, accum ? accum + i : accum, n - i);
}
#else
typedef int rbe_update_avx2_unused;
#endif
