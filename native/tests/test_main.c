/* Runs every C test group and prints the totals in the form CI reads. */
#include <stdio.h>

#include "check.h"

int check_passed = 0;
int check_failed = 0;

void test_codec_arguments(void);
void test_codec_kernels(void);
void test_container(void);
void test_gemm(void);
void test_update(void);

int main(void)
{
    test_codec_arguments();
    test_codec_kernels();
    test_container();
    test_gemm();
    test_update();

    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed == 0 ? 0 : 1;
}
