/* spec_internal.h — what spec.c shares with spec_speed.c inside the library. */
#ifndef HYDRA_SPEC_INTERNAL_H
#define HYDRA_SPEC_INTERNAL_H

#include "hydralm_spec.h"

/* The verification rule, one definition for the sampler (hydra_spec_round)
 * and the exact enumeration of claim 4 (src/eval/spec_exact.c):
 * accept a draft token x with probability min(1, p(x) / q(x)) (q(x) > 0: x
 * was drawn from q) ... */
double hydra_spec_accept_prob(float p, float q);
/* ... and at the first rejection draw from r = norm(max(0, p - q)) (p itself
 * when that has no mass, possible only through rounding). broken = 1 is the
 * planted bug the checks must catch: r = p (resample from the target). */
void hydra_spec_residual(const float *p, const float *q, int V, int broken, float *r);
/* Test hook for the sampler (claim 4's planted-bug control, tests): non-zero
 * makes hydra_spec_round on this thread use the broken residual. */
extern _Thread_local int hydra_spec_fault_residual;

/* Fills the derived rates (acceptance_rate, alpha, tokens_per_target_forward)
 * from the counters of s. */
void hydra_spec_stats_derive(hydra_spec_stats *s);

#endif /* HYDRA_SPEC_INTERNAL_H */
