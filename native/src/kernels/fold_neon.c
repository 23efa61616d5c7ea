/*
 * NEON LSB folding: eight weights per step in two 4 x 32-bit halves, the
 * same integer operations as rbe_fold_scalar, so results match it exactly.
 * Integer only, so armv7 uses it too.
 */
#include "../internal.h"

#ifdef RBE_HAVE_NEON
#include <arm_neon.h>

/* The loop-invariant operands of one fold call. */
typedef struct fold_constants {
    int32x4_t down;          /* negative: vshlq by it shifts right */
    int32x4_t down_left;     /* the same count as a left shift */
    int32x4_t up;
    int32x4_t half;
    int32x4_t max_code;
    int32x4_t keep_remainder;
} fold_constants;

/* Folds four weights; stores the new codes and remainders through the pointers. */
static void fold4(const fold_constants *k, int32x4_t value, int32x4_t code,
                  int32x4_t *new_code, int32x4_t *new_accum)
{
    int32x4_t zero = vdupq_n_s32(0);
    int32x4_t magnitude = vabsq_s32(value);
    int32x4_t move = vshlq_s32(vshlq_s32(vaddq_s32(magnitude, k->half), k->down), k->up);
    int32x4_t delta = vbslq_s32(vcltq_s32(value, zero), vnegq_s32(move), move);
    int32x4_t remainder = vandq_s32(vsubq_s32(value, vshlq_s32(delta, k->down_left)),
                                    k->keep_remainder);
    int32x4_t moved = vaddq_s32(code, delta);
    int32x4_t clamped = vminq_s32(vmaxq_s32(moved, zero), k->max_code);

    *new_code = clamped;
    *new_accum = vandq_s32(remainder, vreinterpretq_s32_u32(vceqq_s32(clamped, moved)));
}

static void fold8(const fold_constants *k, uint16_t *codes, int8_t *accum)
{
    int16x8_t value16 = vmovl_s8(vld1_s8(accum));
    uint16x8_t code16 = vld1q_u16(codes);
    int32x4_t low_code, high_code, low_accum, high_accum;

    fold4(k, vmovl_s16(vget_low_s16(value16)),
          vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(code16))), &low_code, &low_accum);
    fold4(k, vmovl_s16(vget_high_s16(value16)),
          vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(code16))), &high_code, &high_accum);

    /* Clamped codes fit 16 bits and remainders 8, so narrowing truncates nothing. */
    vst1q_u16(codes, vcombine_u16(vmovn_u32(vreinterpretq_u32_s32(low_code)),
                                  vmovn_u32(vreinterpretq_u32_s32(high_code))));
    vst1_s8(accum, vmovn_s16(vcombine_s16(vmovn_s32(low_accum), vmovn_s32(high_accum))));
}

void rbe_fold_neon(uint16_t *codes, int8_t *accum, size_t n, unsigned bits,
                   unsigned upper_planes)
{
    unsigned shift = bits - upper_planes;
    int32_t down = shift < RBE_ACCUM_SHIFT ? (int32_t)(RBE_ACCUM_SHIFT - shift) : 0;
    int32_t up = shift >= RBE_ACCUM_SHIFT ? (int32_t)(shift - RBE_ACCUM_SHIFT) : 0;
    fold_constants k;
    size_t i = 0;

    k.down = vdupq_n_s32(-down);
    k.down_left = vdupq_n_s32(down);
    k.up = vdupq_n_s32(up);
    k.half = vdupq_n_s32(((1 << down) - 1) / 2);
    k.max_code = vdupq_n_s32((1 << bits) - 1);
    k.keep_remainder = vdupq_n_s32(shift < RBE_ACCUM_SHIFT ? -1 : 0);
    for (; i + 8 <= n; i += 8) {
        fold8(&k, codes + i, accum + i);
    }
    rbe_fold_scalar(codes + i, accum + i, n - i, bits, upper_planes);
}
#else
typedef int rbe_fold_neon_unused;
#endif
