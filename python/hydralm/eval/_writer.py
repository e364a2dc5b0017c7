"""Child process of the claims gate (claim 6's cross-process steps):
  python -m hydralm.eval._writer vec PATH SEED N D HEADS
  python -m hydralm.eval._writer bank MODEL BANK ID...
Exit status 0 on success."""
import sys

from .._lib import check, lib


def main(argv):
    if argv[0] == "vec":
        path, seed, n, d, heads = argv[1], *map(int, argv[2:6])
        check(lib.hydra_claims_vecbank_write(path.encode(), seed, n, d, heads))
    elif argv[0] == "bank":
        from .. import FactBank, HydraLM
        lib.hydra_set_num_threads(1)
        model = HydraLM.load(argv[1])
        bank = FactBank(model)
        bank.write([int(x) for x in argv[3:]])
        bank.save(argv[2])
    else:
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
