"""(a) raw baseline: the file over one TCP connection (socat), written with tee and hashed by
openssl in the same pipeline. No target; (b) is compared with it."""

import subprocess
import time

from ..tools import need
from ..util import MiB, BenchError, free_port, human, tcp_listening
from .common import timeout_for, verify

LABEL = "(a) raw TCP baseline"


def run(bench):
    need(bench.tools, "socat", "openssl")
    d = bench.tmp / "a"
    d.mkdir(exist_ok=True)
    out, digest = d / "received.bin", d / "digest.txt"
    port = free_port()
    recv = bench.procs.spawn(
        ["bash", "-c",
         f"set -o pipefail; socat -u TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr - "
         f"| tee '{out}' | openssl dgst -sha1 > '{digest}'"],
        d / "receiver.log", d, bench.env)
    deadline = time.monotonic() + 10
    while not tcp_listening(port):
        if recv.poll() is not None or time.monotonic() > deadline:
            raise BenchError("socat receiver does not listen", [d / "receiver.log"])
        time.sleep(0.01)
    t0 = time.monotonic()
    send = bench.procs.spawn(["socat", "-u", f"FILE:{bench.big}", f"TCP:127.0.0.1:{port}"],
                             d / "sender.log", d, bench.env)
    try:
        rc = recv.wait(timeout_for(bench.size))
    except subprocess.TimeoutExpired:
        raise BenchError("socat pipeline did not finish", [d / "receiver.log"])
    secs = time.monotonic() - t0
    if rc != 0 or send.wait(10) != 0:
        raise BenchError(f"socat pipeline failed (receiver {rc}, sender {send.returncode})",
                         [d / "receiver.log", d / "sender.log"])
    streamed = digest.read_text().split()[-1] if digest.read_text().strip() else ""
    if streamed != bench.big_sha1:
        raise BenchError(f"SHA-1 MISMATCH: openssl saw {streamed}, original {bench.big_sha1}")
    verify(out, bench.big_sha1, "(a) tee output")
    out.unlink()
    mibps = bench.size / MiB / secs
    bench.results["a"] = mibps
    bench.row("a", f"(a) raw TCP baseline: socat → tee → openssl sha1, {human(bench.size)}",
              secs, mibps, "baseline, one loopback TCP connection")
