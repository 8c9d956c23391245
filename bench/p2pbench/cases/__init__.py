"""The cases, one module each (a .. j). Every module has `LABEL`, the row label used when the
case is skipped or fails, and, but for (g), which (b) measures, `run(bench)`, which records the
case's row(s) with `bench.row` or raises BenchError or Skip. Helpers that several cases use are
in `common`."""

from . import a, b, c, d, e, f, g, h, i, j

MODULES = {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g, "h": h, "i": i, "j": j}
LABELS = {case: module.LABEL for case, module in MODULES.items()}
# The order of execution: (f) early, while the machine is quiet; (g) comes with (b).
ORDER = "afbcdehij"
