"""(h) the transfer of (b) between two `aria2c` over a local `opentracker`: the reference for
(b)."""

import os
import subprocess
import time
import urllib.parse
import urllib.request

from ..tools import need
from ..torrent import bdecode, info_hash
from ..util import MiB, POLL, BenchError, free_port, human, tail, tcp_accepts
from .common import timeout_for, verify

LABEL = "(h) aria2c → aria2c"


def run(bench):
    need(bench.tools, "aria2c", "opentracker", "mktorrent")
    d = bench.tmp / "h"
    seed_dir, leech_dir, ot_dir = d / "seed", d / "leech", d / "opentracker"
    for x in (seed_dir, leech_dir, ot_dir):
        x.mkdir(parents=True, exist_ok=True)
    os.chmod(ot_dir, 0o755)  # opentracker chroots here and drops to `nobody`
    src = seed_dir / bench.big.name
    os.link(bench.big, src)
    port = free_port()
    torrent = d / "bench.torrent"
    r = subprocess.run(["mktorrent", "-a", f"http://127.0.0.1:{port}/announce", "-l", "19",
                        "-o", str(torrent), str(src)], capture_output=True)
    if r.returncode != 0:
        raise BenchError(f"mktorrent failed: {r.stderr.decode(errors='replace')}")
    ih = info_hash(torrent)
    # Debian's opentracker is built in whitelist mode: only listed info hashes are tracked.
    wl = ot_dir / "whitelist.txt"
    wl.write_text(ih.hex() + "\n")
    os.chmod(wl, 0o644)
    ot = bench.procs.spawn(["opentracker", "-i", "127.0.0.1", "-p", port, "-P", port,
                            "-d", ot_dir, "-w", "whitelist.txt"],
                           d / "opentracker.log", ot_dir, bench.env)
    deadline = time.monotonic() + 10
    while not tcp_accepts(port):
        if ot.poll() is not None or time.monotonic() > deadline:
            raise BenchError("opentracker does not listen", [d / "opentracker.log"])
        time.sleep(POLL)
    common = ["--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
              "--enable-peer-exchange=false", "--file-allocation=falloc",
              "--summary-interval=0", "--console-log-level=notice", "--no-conf=true",
              "--enable-color=false"]
    bench.procs.spawn(["aria2c", "--seed-ratio=0", "-V", f"--dir={seed_dir}",
                       f"--listen-port={free_port()}", *common, torrent],
                      d / "aria2-seed.log", d, bench.env)
    # Wait until the seeder has checked the file and announced itself complete.
    scrape = (f"http://127.0.0.1:{port}/scrape?info_hash="
              + urllib.parse.quote_from_bytes(ih))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + 60 + bench.size / (50 * MiB)
    while True:
        complete = 0
        try:
            body = opener.open(scrape, timeout=2).read()
            files, _ = bdecode(body)
            entry = files.get(b"files", ({}, 0, 0))[0].get(ih)
            if entry:
                complete = entry[0].get(b"complete", (0,))[0]
        except (OSError, ValueError, IndexError, KeyError, AttributeError):
            pass
        if complete >= 1:
            break
        if time.monotonic() > deadline:
            raise BenchError("the aria2c seeder did not announce itself complete",
                             [d / "aria2-seed.log", d / "opentracker.log"])
        time.sleep(0.2)
    t0 = time.monotonic()
    leech = bench.procs.spawn(["aria2c", "--seed-time=0", f"--dir={leech_dir}",
                               f"--listen-port={free_port()}", *common, torrent],
                              d / "aria2-leech.log", d, bench.env)
    try:
        rc = leech.wait(timeout_for(bench.size))
    except subprocess.TimeoutExpired:
        raise BenchError("the aria2c leecher did not finish", [d / "aria2-leech.log"])
    secs = time.monotonic() - t0
    if rc != 0:
        raise BenchError(f"the aria2c leecher exited with {rc}", [d / "aria2-leech.log"])
    verify(leech_dir / bench.big.name, bench.big_sha1, "(h) aria2c download")
    (leech_dir / bench.big.name).unlink()
    mibps = bench.size / MiB / secs
    bench.results["h"] = mibps
    own = [l.split("|")[2].strip() for l in tail(d / "aria2-leech.log", 30).splitlines()
           if l.count("|") >= 3 and l.split("|")[1].strip() == "OK"]
    bench.row("h", f"(h) aria2c → aria2c over opentracker, {human(bench.size)}", secs, mibps,
              "reference for (b); piece 512 KiB; time of the leecher process, start to exit"
              + (f" (aria2c's own average: {own[0]})" if own else ""))
