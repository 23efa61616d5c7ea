/* Runs every C test group and prints the totals in the form CI reads. */
#include <stdio.h>

#include "check.h"

int check_passed = 0;
int check_failed = 0;

size_t available_simd_isas(rbe_isa *isas)
{
    const rbe_isa candidates[] = {RBE_ISA_AVX2, RBE_ISA_AVX512, RBE_ISA_NEON};
    size_t count = 0;

    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        int available = 0;
        rbe_isa_available(candidates[i], &available);
        if (available) {
            isas[count++] = candidates[i];
        }
    }
    return count;
}

void test_codec_arguments(void);
void test_codec_kernels(void);
void test_container(void);
void test_gemm(void);
void test_update(void);
void test_gemm_t(void);
void test_dense_train(void);
void test_program(void);

int main(void)
{
    test_codec_arguments();
    test_codec_kernels();
    test_container();
    test_gemm();
    test_update();
    test_gemm_t();
    test_dense_train();
    test_program();

    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed == 0 ? 0 : 1;
}
