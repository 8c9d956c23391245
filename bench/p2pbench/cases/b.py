"""(b) `p2pctl download_file` from one seeder; target >= 80% of (a) and >= 2x (h), settled by
`finish` once those have run. Also measures (g), the downloader's peak RSS, and (k), the CPU
time of both daemons."""

from ..util import MiB, human, lo_tx_bytes
from . import g, k
from .common import download, downloader, retire, seeder, timeout_for, use_seeders, verify

LABEL = "(b) download_file from 1 seeder"


def run(bench):
    use_seeders(bench, 1)
    s1 = seeder(bench, 1)
    d = downloader(bench, "dl-b")
    try:
        w0, lo0 = s1.wchar(), lo_tx_bytes()
        cpu_d0, cpu_s0 = d.cpu_seconds(), s1.cpu_seconds()
        (secs,), (dest,) = download(bench, [(d, bench.big.name)], bench.size,
                                    timeout_for(bench.size))
        cpu_d, cpu_s = d.cpu_seconds() - cpu_d0, s1.cpu_seconds() - cpu_s0
        hwm = d.hwm_mib()
        upload, lo = s1.wchar() - w0, lo_tx_bytes() - lo0
        verify(dest, bench.big_sha1, "(b) download")
    finally:
        retire([d])
    mibps = bench.size / MiB / secs
    bench.results["b"] = mibps
    bench.results["wchar_b"] = upload / bench.size
    bench.results["lo_b"] = lo / bench.size if lo0 >= 0 else None
    bench.row("b", f"(b) download_file from 1 seeder, {human(bench.size)}", secs, mibps, "")
    g.record(bench, hwm)
    if "k" in bench.only:
        k.record(bench, cpu_d, cpu_s, bench.size)


def finish(bench):
    """(b)'s targets need (a) and (h), measured later in the run."""
    if "b" not in bench.rows or bench.rows["b"][3]:
        return
    mibps = bench.results["b"]
    notes, met = [], []
    a, h = bench.results.get("a"), bench.results.get("h")
    if a:
        notes.append(f"{mibps / a:.0%} of (a) (target ≥ 80%)")
        met.append(mibps >= 0.8 * a)
    else:
        notes.append("vs (a): not measured")
    if h:
        notes.append(f"{mibps / h:.2f}× (h) (target ≥ 2×)")
        met.append(mibps >= 2 * h)
    else:
        notes.append("vs (h): not measured")
    verdict = ("yes" if all(met) else "no") if met else "n/a"
    if met and len(met) < 2:
        verdict += " (partly measured)"
    label, secs, _, _, _ = bench.rows["b"]
    bench.rows["b"] = (label, secs, mibps, "; ".join(notes), verdict)
