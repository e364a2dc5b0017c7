"""hydralm.eval — evaluation entry points (`python -m hydralm.eval.claims`)."""
