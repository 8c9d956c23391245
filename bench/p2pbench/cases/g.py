"""(g) peak RSS (VmHWM) of the downloading p2pd of (b), target < 64 MiB. It has no run of its
own: (b) measures it and calls `record`; `--only g` runs (b)."""

LABEL = "(g) peak RSS of the downloader"


def record(bench, hwm):
    """The row of (g), from the downloader's VmHWM in MiB."""
    bench.results["g"] = hwm
    bench.row("g", "(g) peak RSS (VmHWM) of the downloading p2pd in (b)", None, None,
              f"{hwm:.1f} MiB (target < 64 MiB)", "yes" if hwm < 64 else "no")
