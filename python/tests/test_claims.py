"""python -m hydralm.eval.claims: the library's claims gate from Python.
Fast: one quick claim and the argument errors. Slow (pytest -m slow): the
whole gate at the ci budget, every claim PASS but the known failures (claim 1)."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT, env_for_child
from hydralm.eval import claims


def run_claims(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "hydralm.eval.claims"] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env_for_child())


def test_one_claim_prints_the_cli_lines():
    r = run_claims("--claim", "claim_4", "--seed", "0", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"\[PASS\] claim_4_spec_decoding_exact · .+", lines[0])
    assert lines[-1].startswith("CLAIMS PASS · 1 passed, 0 failed")


def test_claims_arguments():
    assert run_claims("--claim", "claim_99").returncode == 2
    assert run_claims().returncode == 2  # --all or --claim is required
    assert "claim_1_length_generalisation" in claims.names()
    with pytest.raises(ValueError):
        claims.run(["nope"])
    with pytest.raises(ValueError):
        claims.run(budget="huge")


# Known, honest failures at the ci budget (as claims_ci's --expect-fail): claim 1
# since issue 18 finding 6 (recall of facts planted beyond the training length
# decays; docs/claims.md). Every other ci claim must pass.
KNOWN_FAIL = ("claim_1_length_generalisation",)


@pytest.mark.slow
def test_claims_gate_all_pass():
    r = run_claims("--all", "--seed", "0", timeout=3600)
    lines = r.stdout.splitlines()
    n_ci = sum(1 for i in range(claims.lib.hydra_claims_count()) if not claims.lib.hydra_claim_paper_only(i))
    assert sum(l.startswith("[PASS] claim_") for l in lines) == n_ci - len(KNOWN_FAIL), r.stdout
    for name in KNOWN_FAIL:
        assert any(l.startswith("[FAIL] " + name + " ") for l in lines), r.stdout
    assert lines[-1].startswith("CLAIMS FAIL"), r.stdout
    assert r.returncode == 1
