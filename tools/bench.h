/* bench.h — micro-benchmarks run by `hydra bench`. */
#ifndef HYDRA_TOOLS_BENCH_H
#define HYDRA_TOOLS_BENCH_H

#include <stdio.h>

/* Delta-rule kernel table (fast vs ref, prefill 512 tokens and single-token
 * decode at dk=dv=64 x 12 heads and 128 x 16 heads). threads <= 0: leave the
 * OpenMP thread count as it is. */
void hydra_bench_delta_rule(FILE *out, int threads);

#endif /* HYDRA_TOOLS_BENCH_H */
