"""python -m hydralm.eval.claims --all --seed 0 — the claims gate.

Runs libhydralm's gate (hydra_claims_run, the same measurements as `hydra
claims`) and prints one `[PASS] claim_...` line per claim and a summary line,
in the CLI's format; exits 0 only if every claim passed. Claim 6's
cross-process steps write their files in a child Python process
(hydralm.eval._writer), as the CLI does with a child `hydra`."""
import argparse
import ctypes as C
import subprocess
import sys
import time

from .. import _lib
from .._lib import check, lib, run_cancellable

BUDGETS = {"ci": 0, "paper": 1, "gpu": 2}


def _child(args):
    return subprocess.run([sys.executable, "-m", "hydralm.eval._writer"] + [str(a) for a in args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def _vec_writer(path, seed, n, d, heads, user):
    return _child(["vec", path.decode(), seed, n, d, heads])


def _bank_writer(model_path, ids, n, bank_path, user):
    return _child(["bank", model_path.decode(), bank_path.decode()] + [ids[i] for i in range(n)])


def _progress(claim, msg, user):
    print("  [%s] %s" % (claim.decode(), msg.decode()), file=sys.stderr, flush=True)


def names():
    """Every registered claim's name."""
    return [lib.hydra_claim_name(i).decode() for i in range(lib.hydra_claims_count())]


def run(claims=None, budget="ci", seed=0, quiet=False, cross_process=True, device=None):
    """Run the named claims (None = all of the budget) and return a list of
    dicts (name, status, summary, seconds, measured, thresholds). device:
    None / "cpu", or "cuda[:N]" for the training claims (the gpu budget needs it)."""
    if budget not in BUDGETS:
        raise ValueError("budget must be 'ci', 'paper' or 'gpu'")
    if budget == "gpu" and not (device or "").startswith("cuda"):
        raise ValueError("the gpu budget sizes the claims for a GPU: give device='cuda' (or 'cuda:N')")
    o = lib.hydra_claims_opts_default(BUDGETS[budget], seed)
    keep = []  # the C callbacks (and the device string) must outlive the run
    if device:
        keep.append(C.c_char_p(device.encode()))
        o.device = keep[-1].value
    if not quiet:
        keep.append(_lib.CLAIMS_PROGRESS(_progress))
        o.progress = keep[-1]
    if cross_process:
        keep += [_lib.VECBANK_WRITER(_vec_writer), _lib.BANK_WRITER(_bank_writer)]
        o.vec_writer, o.bank_writer = keep[-2], keep[-1]
    sel = None
    if claims:
        for c in claims:
            if lib.hydra_claim_find(c.encode()) < 0:
                raise ValueError("no claim %r; claims are: %s" % (c, ", ".join(names())))
        sel = (C.c_char_p * len(claims))(*[c.encode() for c in claims])
    res, n = (_lib.ClaimResult * _lib.CLAIMS_MAX)(), C.c_int()
    run_cancellable(lambda: check(lib.hydra_claims_run(C.byref(o), sel, len(claims or ()), res, _lib.CLAIMS_MAX,
                                                       C.byref(n))))

    def values(vs, k, with_op):
        return {v.name.decode(): ((v.op.decode(), v.value) if with_op else v.value) for v in vs[:k]}

    return [{"name": r.name.decode(), "status": lib.hydra_claim_status_str(r.status).decode(),
             "summary": r.summary.decode(), "seconds": r.seconds, "measured": values(r.values, r.n_values, False),
             "thresholds": values(r.thresholds, r.n_thresholds, True), "nonstandard": r.nonstandard.decode()}
            for r in res[:n.value]]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m hydralm.eval.claims", description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--all", action="store_true", help="every claim of the budget")
    g.add_argument("--claim", help="comma-separated claim names or prefixes, e.g. claim_3,claim_4")
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="ci")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None, help="cpu (default) or cuda / cuda:N (the gpu budget needs it)")
    ap.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    a = ap.parse_args(argv)
    if a.threads > 0:
        lib.hydra_set_num_threads(a.threads)
    t0 = time.monotonic()
    try:
        res = run(a.claim.split(",") if a.claim else None, a.budget, a.seed, a.quiet, device=a.device)
    except ValueError as e:
        print("hydralm.eval.claims: %s" % e, file=sys.stderr)
        return 2
    counts = {s: sum(r["status"] == s for r in res) for s in ("PASS", "FAIL", "TODO", "ERROR")}
    passed = bool(res) and counts["PASS"] == len(res)
    for r in res:
        label = r["status"] + (", NON-STANDARD" if r["nonstandard"] else "")  # as the CLI labels quick runs
        print("[%s] %s · %s" % (label, r["name"], r["summary"]))
    print("%s · %d passed, %d failed, %d not implemented, %d errors · budget %s · seed %d · %.1f s" % (
        "CLAIMS PASS" if passed else "CLAIMS FAIL", counts["PASS"], counts["FAIL"], counts["TODO"],
        counts["ERROR"], a.budget, a.seed, time.monotonic() - t0), flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
