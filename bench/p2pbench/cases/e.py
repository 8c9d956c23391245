"""(e) one seeder, eight simultaneous downloaders of a quarter-size file: the time until all
are complete, and what the seeder uploaded (growth of `wchar` in /proc/<pid>/io); target: the
seeder uploads < 3 copies."""

from ..util import MiB, human, lo_tx_bytes
from .common import download, downloader, retire, seeder, timeout_for, use_seeders, verify

LABEL = "(e) 1 seeder → 8 downloaders"


def run(bench):
    use_seeders(bench, 1, file=bench.quarter)
    s1 = seeder(bench, 1)
    dls = []
    try:
        for i in range(1, 9):
            dls.append(downloader(bench, f"dl-e{i}"))
        w0, lo0 = s1.wchar(), lo_tx_bytes()
        times, dests = download(bench, [(d, bench.quarter.name) for d in dls], bench.qsize,
                                timeout_for(8 * bench.qsize))
        upload, lo = s1.wchar() - w0, lo_tx_bytes() - lo0
        for d, dest in zip(dls, dests):
            verify(dest, bench.quarter_sha1, f"(e) download by {d.name}")
    finally:
        retire(dls)
    secs = max(times)
    copies = upload / bench.qsize
    mibps = 8 * bench.qsize / MiB / secs
    calib = bench.results.get("wchar_b")
    note = (f"seeder uploaded {upload / MiB:.0f} MiB = {copies:.2f} copies (target < 3); "
            f"first done {min(times):.2f} s; throughput = 8 copies / time")
    if calib is not None:
        note += f"; in (b) the seeder's wchar grew by {calib:.2f}× the file"
        if bench.results.get("lo_b") is not None:
            note += f" (loopback: {bench.results['lo_b']:.2f}×)"
    if lo >= 0:
        note += (f"; loopback carried {lo / bench.qsize:.1f} copies in all "
                 f"(8 needed; includes headers and any other traffic)")
    bench.row("e", f"(e) 1 seeder → 8 downloaders, {human(bench.qsize)} each", secs, mibps,
              note, "yes" if copies < 3 else "no")
