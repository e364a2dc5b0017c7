"""The ctypes structs mirror the C headers: sizes and last-field offsets
checked against the compiler's."""
import ctypes as C

from c_helpers import compile_c, run_c
from hydralm import _lib

STRUCTS = {  # C type -> (ctypes struct, its last field)
    "hydra_config": (_lib.Config, "init_dt_max"),
    "hydra_sample_opts": (_lib.SampleOpts, "top_p"),
    "hydra_gen_opts": (_lib.GenOpts, "user"),
    "hydra_stream_opts": (_lib.StreamOpts, "weights"),
    "hydra_stream_stats": (_lib.StreamStats, "tokens_per_s"),
    "hydra_spec_opts": (_lib.SpecOpts, "user"),
    "hydra_spec_stats": (_lib.SpecStats, "prefill_seconds"),
    "hydra_optim_opts": (_lib.OptimOpts, "grad_clip"),
    "hydra_train_opts": (_lib.TrainOpts, "seed"),
    "hydra_step_info": (_lib.StepInfo, "tokens"),
    "hydra_task": (_lib.Task, "sample"),
    "hydra_factbank_info": (_lib.FactbankInfo, "schedule"),
    "hydra_claim_value": (_lib.ClaimValue, "op"),
    "hydra_claim_curve": (_lib.ClaimCurve, "y"),
    "hydra_claim_result": (_lib.ClaimResult, "n_curves"),
    "hydra_claims_opts": (_lib.ClaimsOpts, "bank_writer_user"),
}


def test_struct_layouts_match_the_headers(tmp_path):
    lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "hydralm.h"', '#include "hydralm_stream.h"',
             '#include "hydralm_spec.h"', '#include "hydralm_train.h"', '#include "hydralm_factbank.h"',
             '#include "hydralm_claims.h"', "int main(void) {"]
    for name, (_, last) in STRUCTS.items():
        lines.append('printf("%s %%zu %%zu\\n", sizeof(%s), offsetof(%s, %s));' % (name, name, name, last))
    lines.append("return 0; }")
    out = run_c(compile_c(tmp_path, "\n".join(lines))).decode().split("\n")
    got = {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in out if l}
    for name, (cls, last) in STRUCTS.items():
        assert got[name] == (C.sizeof(cls), getattr(cls, last).offset), name
