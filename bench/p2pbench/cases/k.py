"""(k) CPU time (user + system) of the downloading and of the seeding p2pd per GiB in (b), TLS
included, beside `openssl dgst -sha1` of the same file in the same run (warm cache): one SHA-1
pass is the least a verifying downloader can spend. Target: the downloader <= 2.0x openssl.
It has no run of its own: (b) measures it and calls `record`; `--only k` runs (b)."""

import resource
import subprocess

from ..util import GiB

LABEL = "(k) CPU per GiB of the downloading and seeding p2pd"


def openssl_cpu(path):
    """CPU seconds `openssl dgst -sha1` spends on `path` (its children's rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["openssl", "dgst", "-sha1", str(path)], check=True,
                   stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def record(bench, downloader_cpu, seeder_cpu, size):
    """The row of (k), from the CPU seconds each daemon spent on a download of `size` bytes."""
    per = GiB / size
    down, seed = downloader_cpu * per, seeder_cpu * per
    ssl = openssl_cpu(bench.big) * per
    bench.results["k"] = (down, seed, ssl)
    ratio = down / ssl if ssl else float("inf")
    bench.row("k", "(k) CPU per GiB: downloading / seeding p2pd, TLS included", down, None,
              f"downloader {down:.2f} CPU-s, seeder {seed:.2f} CPU-s per GiB; openssl dgst "
              f"-sha1 of the file {ssl:.2f} CPU-s per GiB; the downloader is {ratio:.2f}× "
              f"openssl (target ≤ 2.0×)", "yes" if ratio <= 2.0 else "no")
