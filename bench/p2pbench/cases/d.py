"""(d) `p2pctl download_file` from four seeders each at `--upload-limit R` (--rate); target
>= 3.4 R."""

from ..util import MiB, human
from .common import download, downloader, retire, timeout_for, use_seeders, verify

LABEL = "(d) 4 rate-limited seeders"


def run(bench):
    r = bench.rate
    use_seeders(bench, 4, limit=r)
    d = downloader(bench, "dl-d")
    try:
        (secs,), (dest,) = download(bench, [(d, bench.big.name)], bench.size,
                                    timeout_for(bench.size, r))
        verify(dest, bench.big_sha1, "(d) download")
    finally:
        retire([d])
    mibps = bench.size / MiB / secs
    target = 3.4 * r / MiB
    bench.row("d", f"(d) from 4 seeders at --upload-limit {human(r)}/s each", secs, mibps,
              f"{mibps / (r / MiB):.2f} R (target ≥ 3.4 R = {target:.1f} MiB/s)",
              "yes" if mibps >= target else "no")
