/* spec_internal.h — what spec.c shares with spec_speed.c inside the library. */
#ifndef HYDRA_SPEC_INTERNAL_H
#define HYDRA_SPEC_INTERNAL_H

#include "hydralm_spec.h"

/* Fills the derived rates (acceptance_rate, alpha, tokens_per_target_forward)
 * from the counters of s. */
void hydra_spec_stats_derive(hydra_spec_stats *s);

#endif /* HYDRA_SPEC_INTERNAL_H */
