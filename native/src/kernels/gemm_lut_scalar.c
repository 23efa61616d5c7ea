/*
 * Scalar reference of the lookup path of the product (see
 * rbe_gemm_choose_path). For each row, batch entry, group and plane p it
 * adds one table entry per 4 columns: the table of those columns indexed
 * by their 4 bits in plane p. Four chains take the group's tables in turn
 * (table i of the group goes to chain i % 4, in increasing i), so SIMD
 * kernels can overlap four additions. The plane sum is
 * (chain 0 + chain 1) + (chain 2 + chain 3), and the planes enter the group
 * in order as bits_sum = bits_sum + plane_sum * 2^(B-1-p), the product
 * being exact. The group then adds to the row as in rbe_gemm_add_group_sums.
 */
#include "../internal.h"

static unsigned nibble_at(const uint8_t *plane_row, size_t table)
{
    return (plane_row[table / 2] >> (4 * (table % 2))) & 15u;
}

static float plane_sum(const float *tables, const uint8_t *plane_row, size_t first_table,
                       size_t count)
{
    float chain[4] = {0.0f, 0.0f, 0.0f, 0.0f};

    for (size_t i = 0; i < count; i++) {
        size_t table = first_table + i;
        chain[i % 4] += tables[table * RBE_LUT_ENTRIES + nibble_at(plane_row, table)];
    }
    return (chain[0] + chain[1]) + (chain[2] + chain[3]);
}

static float row_product(const rbe_gemm_args *args, size_t row, size_t m, float center_offset)
{
    const rbe_layout *layout = args->layout;
    size_t per_row = rbe_gemm_lut_tables_per_row(layout);
    size_t group_tables = rbe_gemm_lut_group_tables(layout);
    const float *tables = args->lut + m * per_row * RBE_LUT_ENTRIES;
    float total = 0.0f;

    for (size_t g = 0; g < layout->groups; g++) {
        size_t param = row * layout->groups + g;
        float bits_sum = 0.0f;

        for (unsigned p = 0; p < args->planes_used; p++) {
            const uint8_t *plane_row = args->planes[p] + row * layout->row_stride;
            float weight = (float)(1u << (layout->bits - 1 - p));
            bits_sum += plane_sum(tables, plane_row, g * group_tables, group_tables) * weight;
        }
        total = rbe_gemm_add_group_sums(total, bits_sum, args->lut_x_sums[m * layout->groups + g],
                                        args->scale[param], center_offset, args->zero[param]);
    }
    return total;
}

void rbe_gemm_lut_rows_scalar(const rbe_gemm_args *args, size_t row_begin, size_t row_end)
{
    const rbe_layout *layout = args->layout;
    float center_offset = rbe_center_offset(layout->bits, args->planes_used);

    for (size_t row = row_begin; row < row_end; row++) {
        for (size_t m = 0; m < args->batch; m++) {
            args->y[m * layout->rows + row] = row_product(args, row, m, center_offset);
        }
    }
}
