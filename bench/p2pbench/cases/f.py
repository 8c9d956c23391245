"""(f) `p2pctl upload_file` (hashing the file) vs `openssl dgst -sha1` on the same warm file;
target >= 90% of openssl."""

import subprocess
import time

from ..cluster import Daemon, start_trackers
from ..tools import need
from ..util import MiB, BenchError, human

LABEL = "(f) upload_file hashing"


def run(bench):
    need(bench.tools, "openssl")
    start_trackers(bench)
    h = Daemon(bench, "hasher")
    h.start()
    h.ctl("create_user", h.user, h.password)
    h.ctl("login", h.user, h.password)
    h.ctl("create_group", "hashing")

    def openssl():
        t0 = time.monotonic()
        r = subprocess.run(["openssl", "dgst", "-sha1", str(bench.big)], capture_output=True)
        secs = time.monotonic() - t0
        got = r.stdout.decode().split()[-1] if r.stdout.strip() else ""
        if r.returncode != 0 or got != bench.big_sha1:
            raise BenchError(f"openssl dgst -sha1 failed or disagrees: {r.stdout!r} {r.stderr!r}")
        return secs

    tiny = bench.tmp / "files" / "tiny.bin"
    tiny.write_bytes(b"x")
    t0 = time.monotonic()
    h.ctl("upload_file", "hashing", tiny)  # the fixed cost: p2pctl, control socket, tracker
    fixed = time.monotonic() - t0
    openssl()  # warm the page cache
    ref = openssl()
    t0 = time.monotonic()
    h.ctl("upload_file", "hashing", bench.big)
    secs = time.monotonic() - t0
    h.stop()
    mibps = bench.size / MiB / secs
    ref_mibps = bench.size / MiB / ref
    ratio = mibps / ref_mibps
    bench.row("f", f"(f) upload_file hashing, {human(bench.size)} (warm cache)", secs, mibps,
              f"openssl dgst -sha1: {ref:.2f} s, {ref_mibps:.0f} MiB/s; upload_file is "
              f"{ratio:.0%} of it (target ≥ 90%); a 1-byte upload_file takes {fixed * 1000:.0f} ms",
              "yes" if ratio >= 0.9 else "no")
