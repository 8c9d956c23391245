"""(j) tracker writes over the tracker protocol (p2p-bench-client) on a tracker pair of its own
(<tmp>/j/): --writes create_group, 100 per user (a user may own at most 100 groups), one at a
time over one connection, with the standby attached (synchronous replication) and with it
killed (primary alone); the same for a read (list_groups), and the file system's fdatasync
latency for scale. Then group commit: --writes file registrations (upload_file, up to 10,000
per user) over one connection and over 16 concurrent connections (each one write at a time,
one process for all, so the run is long enough to be steady), standby attached. Target: 16
connections reach at least 3× the writes/s of one, with p99 at most 5 ms."""

import os
import signal
import time
from pathlib import Path

from ..cluster import TrackerPair
from ..report import percentile
from ..util import BenchError, log
from ..wire import TrackerClient

LABEL = "(j) tracker write throughput and latency"

# What a primary logs when its standby did not acknowledge a write in time.
DROPPED = "standby did not acknowledge in time"
# Concurrent connections of the concurrent run, and its target against one connection.
CONCURRENT = 16
TARGET_SPEEDUP = 3.0
TARGET_P99 = 0.005


def run(bench):
    n = bench.args.writes
    pair = TrackerPair(bench, "j")
    try:
        pair.start(1)
        pair.start(2)
        primary = pair.wait_synced(timeout=60)
        client = TrackerClient(bench.bin("p2p-bench-client"), pair.ports[primary])
        user, pw = "writer", "bench-writer-pw-4821"
        client.call({"op": "create_user", "user": user, "password": pw})
        warm = 50
        # Warm-up; also gives list_groups something to list.
        client.timed(user, pw, {"op": "create_group", "group": "warm{k}"}, warm)
        if pair.wait_synced() != primary:
            raise BenchError("the primary changed during the warm-up", pair.logs())
        reads = timed(client.timed(user, pw, {"op": "list_groups"}, max(50, n // 4)))
        disk_before = fdatasync_latency(pair.dir)
        dropped = count_in(pair.log_path(primary), DROPPED)
        sync = timed(group_writes(client, "sync", n))
        one = timed(file_writes(client, "one", n))
        conc = timed(file_writes(client, "conc", n, CONCURRENT))
        dropped = count_in(pair.log_path(primary), DROPPED) - dropped
        st = pair.status(primary)
        if "standby attached" not in st["replication"]:
            raise BenchError(f"the standby was dropped during the synchronous writes: "
                             f"`{st['line']}`", pair.logs())
        pair.signal(3 - primary, signal.SIGKILL)
        pair.wait_alone(primary)
        solo = timed(group_writes(client, "solo", n))
        if pair.status(primary)["role"] != "primary":
            raise BenchError("the primary stepped down during the writes", pair.logs())
        disk_after = fdatasync_latency(pair.dir)
    except BenchError as e:
        e.logs += pair.logs()
        raise
    finally:
        pair.stop_all()

    def ms(x):
        return f"{x * 1000:.2f}" if x < 0.01 else f"{x * 1000:.1f}"

    def lat(t):
        return (f"latency p50 {ms(t['p50'])} ms, p99 {ms(t['p99'])} ms, "
                f"max {ms(t['max'])} ms")

    warning = (f"; WARNING: the primary dropped the standby {dropped}× (no ack within its "
               f"timeout), so some writes did not wait for it" if dropped else "")
    bench.row("j", f"(j) {n} sequential writes (create_group), standby attached",
              sync["total"], None,
              f"{sync['rate']:.0f} writes/s; {lat(sync)}; synchronous replication: each "
              f"answer waits for the standby's acknowledgement of the committed record"
              + warning)
    bench.row("j.w1", f"(j) {n} file registrations (upload_file) over 1 connection, standby "
              f"attached", one["total"], None,
              f"{one['rate']:.0f} writes/s; {lat(one)}; one write at a time" + warning)
    speedup = conc["rate"] / one["rate"]
    met = speedup >= TARGET_SPEEDUP and conc["p99"] <= TARGET_P99 and not dropped
    bench.row("j.w16", f"(j) {n} file registrations (upload_file) over {CONCURRENT} concurrent "
              f"connections, standby attached", conc["total"], None,
              f"{conc['rate']:.0f} writes/s, {speedup:.1f}× one connection's; {lat(conc)}; "
              f"each connection one write at a time; concurrent writes share a commit on each "
              f"tracker and the standby's acknowledgement (target ≥ {TARGET_SPEEDUP:.0f}× and "
              f"p99 ≤ {TARGET_P99 * 1000:.0f} ms)" + warning,
              "yes" if met else "no")
    log(f"(j) group commit: {CONCURRENT} connections {conc['rate']:.0f} writes/s, one "
        f"{one['rate']:.0f} ({speedup:.1f}×, target ≥ {TARGET_SPEEDUP:.0f}×); p50 "
        f"{ms(conc['p50'])} ms, p99 {ms(conc['p99'])} ms (target ≤ {TARGET_P99 * 1000:.0f} ms): "
        f"target " + ("met" if met else "NOT met"))
    if dropped:
        bench.warn(f"(j): the primary dropped the standby {dropped}× during the synchronous "
                   f"writes ('{DROPPED}' in {pair.log_path(primary)})")
    bench.row("j.solo", f"(j) {n} sequential writes (create_group), standby killed",
              solo["total"], None,
              f"{solo['rate']:.0f} writes/s; {lat(solo)}; primary alone; the standby "
              f"costs {sync['p50'] / solo['p50']:.1f}× the p50 latency, "
              f"{solo['rate'] / sync['rate']:.1f}× fewer writes/s")
    bench.row("j.read", "(j) reads (list_groups), standby attached", None, None,
              f"{len(reads['all'])} sequential reads of a {warm}-group list: "
              f"{reads['rate']:.0f} reads/s; {lat(reads)}; for scale, an fdatasync of "
              f"4 KiB on the trackers' file system took p50 {ms(disk_before[0])} ms, "
              f"p90 {ms(disk_before[1])} ms before the writes and p50 {ms(disk_after[0])} "
              f"ms, p90 {ms(disk_after[1])} ms after them (each write costs one on the "
              f"primary, and one on the standby when attached)")


# Groups one user may own (the tracker's limit): the writes are spread over enough users.
GROUPS_PER_USER = 100


def group_writes(client, prefix, n):
    """`n` create_group writes, `GROUPS_PER_USER` per user (users made beforehand, untimed);
    the batches' timings added up as one `TrackerClient.timed` result."""
    batches = [min(GROUPS_PER_USER, n - start) for start in range(0, n, GROUPS_PER_USER)]
    users = []
    for b in range(len(batches)):
        user, pw = f"{prefix}{b}", f"bench-{prefix}{b}-pw-4821"
        client.call({"op": "create_user", "user": user, "password": pw})
        users.append((user, pw))
    total, latencies = 0.0, []
    for (user, pw), count in zip(users, batches):
        group = f"{user}g{{k}}"
        result = client.timed(user, pw, {"op": "create_group", "group": group}, count)
        total += result["total"]
        latencies += result["latencies"]
    return {"total": total, "latencies": latencies}


# Files one user may add (the tracker's limit).
FILES_PER_USER = 10_000


def file_writes(client, prefix, n, connections=1):
    """`n` upload_file writes of small files into a group of their own, over `connections`
    concurrent connections (each one write at a time), at most `FILES_PER_USER` per user (and
    per group; each user and its group made first, untimed); the timings added up as one
    `TrackerClient.timed` result."""
    per_user = FILES_PER_USER // connections * connections
    batches = [min(per_user, n - start) for start in range(0, n, per_user)]
    total, latencies = 0.0, []
    for b, count in enumerate(batches):
        user, pw = f"{prefix}{b}", f"bench-{prefix}{b}-pw-4821"
        group = f"{user}g"
        client.call({"op": "create_user", "user": user, "password": pw})
        client.call({"op": "create_group", "group": group}, user, pw)
        upload = {"op": "upload_file", "group": group, "port": 7000,
                  "file": {"name": "f{k}", "size": 1, "sha1": "a" * 40, "pieces": ["b" * 40]}}
        result = client.timed(user, pw, upload, count, connections=connections)
        total += result["total"]
        latencies += result["latencies"]
    return {"total": total, "latencies": latencies}


def count_in(path, text):
    try:
        return Path(path).read_text(errors="replace").count(text)
    except OSError:
        return 0


def timed(result):
    """The statistics of a `TrackerClient.timed` batch."""
    latencies, total = result["latencies"], result["total"]
    return {"total": total, "rate": len(latencies) / total, "all": latencies,
            "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
            "max": max(latencies)}


def fdatasync_latency(directory, n=200):
    """p50 and p90 of an fdatasync after a 4 KiB write to a file in `directory`: what a commit
    costs on that file system now (on a VM it can vary with the host's load)."""
    path = Path(directory) / "fdatasync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = os.urandom(4096)
        latencies = []
        for i in range(n):
            os.pwrite(fd, block, (i % 64) * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return percentile(latencies, 0.5), percentile(latencies, 0.9)
