/*
 * Tables of the lookup path of rbe_gemm_f32: for every 4 columns, the sums
 * of x over all 16 subsets of them. Every kernel family reads these same
 * floats, so the tables are built once per call, before rows are split
 * between threads.
 */
#include "internal.h"

static void build_table(const float *x, size_t cols, size_t first_col, float *entry)
{
    entry[0] = 0.0f;
    for (unsigned b = 0; b < RBE_LUT_COLS; b++) {
        unsigned half = 1u << b;
        float value = first_col + b < cols ? x[first_col + b] : 0.0f;

        for (unsigned i = 0; i < half; i++) {
            entry[half + i] = entry[i] + value;
        }
    }
}

static float group_x_sum(const float *x, size_t first_col, size_t group_size)
{
    float lanes[RBE_GEMM_LANES] = {0.0f};

    for (size_t k = 0; k < group_size; k++) {
        lanes[k % RBE_GEMM_LANES] += x[first_col + k];
    }
    return rbe_gemm_reduce_lanes(lanes);
}

void rbe_gemm_lut_tables(const rbe_layout *layout, const float *x, size_t batch, float *tables,
                         float *x_sums)
{
    size_t per_row = rbe_gemm_lut_tables_per_row(layout);

    for (size_t m = 0; m < batch; m++) {
        const float *x_row = x + m * layout->cols;
        float *row_tables = tables + m * per_row * RBE_LUT_ENTRIES;

        for (size_t t = 0; t < per_row; t++) {
            build_table(x_row, layout->cols, t * RBE_LUT_COLS, row_tables + t * RBE_LUT_ENTRIES);
        }
        for (size_t g = 0; g < layout->groups; g++) {
            x_sums[m * layout->groups + g] =
                group_x_sum(x_row, g * layout->group_size, layout->group_size);
        }
    }
}
