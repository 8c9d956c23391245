"""The cases, one module each (a .. m). Every module has `LABEL`, the row label used when the
case is skipped or fails, and, but for (g) and (k), which (b) measures, `run(bench)`, which
records the case's row(s) with `bench.row` or raises BenchError or Skip. Helpers that several
cases use are in `common`."""

from . import a, b, c, d, e, f, g, h, i, j, k, l, m

MODULES = {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g, "h": h, "i": i, "j": j,
           "k": k, "l": l, "m": m}
LABELS = {case: module.LABEL for case, module in MODULES.items()}
# The order of execution: (f) early, while the machine is quiet; (g) and (k) come with (b).
ORDER = "afbcdehijlm"
# The cases (b) measures as it runs: asking for one of them runs (b).
MEASURED_BY_B = "gk"
