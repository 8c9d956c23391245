"""(j) tracker writes (create_group) over the tracker protocol (p2p-bench-client) on a tracker
pair of its own (<tmp>/j/), --writes sequential ones, 100 per user on one connection each (a
user may own at most 100 groups): writes/s and p50/p99 latency with the
standby attached (synchronous replication) and with it killed (primary alone); the same for a
read (list_groups), and the file system's fdatasync latency for scale. No target."""

import os
import signal
import time
from pathlib import Path

from ..cluster import TrackerPair
from ..report import percentile
from ..util import BenchError
from ..wire import TrackerClient

LABEL = "(j) tracker write throughput and latency"

# What a primary logs when its standby did not acknowledge a write in time.
DROPPED = "standby did not acknowledge in time"


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

    bench.row("j", f"(j) {n} sequential writes (create_group), standby attached",
              sync["total"], None,
              f"{sync['rate']:.0f} writes/s; {lat(sync)}; synchronous replication: each "
              f"answer waits for the standby's acknowledgement of the committed record"
              + (f"; WARNING: the primary dropped the standby {dropped}× (no ack within "
                 f"its timeout), so some writes did not wait for it" if dropped else ""))
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
