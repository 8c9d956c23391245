"""(c) `p2pctl download_file` from four seeders. No target; compared with (b)."""

from ..util import MiB, human
from .common import download, downloader, retire, timeout_for, use_seeders, verify

LABEL = "(c) download_file from 4 seeders"


def run(bench):
    use_seeders(bench, 4)
    d = downloader(bench, "dl-c")
    try:
        (secs,), (dest,) = download(bench, [(d, bench.big.name)], bench.size,
                                    timeout_for(bench.size))
        verify(dest, bench.big_sha1, "(c) download")
    finally:
        retire([d])
    mibps = bench.size / MiB / secs
    note = "no target"
    if "b" in bench.results:
        note += f"; {mibps / bench.results['b']:.2f}× (b)"
    bench.row("c", f"(c) download_file from 4 seeders, {human(bench.size)}", secs, mibps, note)
