"""(m) the tracker's relay, on a tracker pair of its own (<tmp>/m/) whose relay is not rate
limited (--relay-rate 0 --relay-total 0) and admits many relays (--relay-max and
--relay-per-user 1024).

- Memory, first, on the fresh pair: `p2p-bench-client relay-pairs` makes its two accounts,
  then (the baseline VmRSS of the primary taken, without the accounts' password hashing) opens
  PAIRS relays at once (two TLS connections to the tracker each) and streams through all of
  them (bulk one way, a trickle back); the VmRSS is sampled until the traffic ends. Growth of
  the peak over the baseline, divided by PAIRS, is the memory per relayed connection (both
  legs, their TLS state and the relay's buffers). Target: < 256 KiB.
- Throughput: one seeder shares a 256 MiB file; in the same run, fresh downloaders fetch it
  directly (p2pd's default ways) and through the relay only (`p2pd --connect-via relay`), in
  alternating order, ROUNDS times each. Each downloader is retired once done, so every download
  has the one seeder only. The relayed downloads must show in the tracker's log (`relay
  opened`), the direct ones must not. The target compares whole downloads, set-up
  included; the note also gives the set-up (until the tracker's `relay opened`) and the
  throughput once paired. Target: relayed median >= half the direct median.
- Rate limits, on another pair with --relay-rate 4M --relay-total 8M: one relay streaming for
  5 s, then four at once (each alone could move 4 MiB/s); what they moved per second, both
  directions counted, must be within -20%/+10% of the limit that binds."""

import hashlib
import json
import os
import subprocess
import threading
import time

from ..cluster import Daemon, TrackerPair
from ..processes import cpu_seconds, proc_field
from ..util import GROUP, KiB, MiB, POLL, BenchError, human, log
from .common import download, retire, timeout_for, verify

LABEL = "(m) relayed download vs direct, and relay memory"

SIZE = 256 * MiB
ROUNDS = 3
PAIRS = 256
RELAY_ARGS = ["--relay-rate", "0", "--relay-total", "0",
              "--relay-max", "1024", "--relay-per-user", "1024"]
OPENED = "relay opened"
# The rate limits' check: one relay under its own rate, then RATE_PAIRS under the total.
RATE = 4 * MiB
TOTAL = 8 * MiB
RATE_PAIRS = 4
RATE_SECS = 5.0


def run(bench):
    pair = TrackerPair(bench, "m", extra=RELAY_ARGS)
    daemons = []
    try:
        pair.start(1)
        pair.start(2)
        primary = pair.wait_synced(timeout=60)
        memory = relay_memory(bench, pair, primary)
        measured = throughput(bench, pair, primary, daemons)
    except BenchError as e:
        e.logs += pair.logs() + [d.log for d in daemons]
        raise
    finally:
        retire([d for d in daemons if d.running()])
        pair.stop_all()
    limited = rate_limits(bench)
    speeds, transfers, cpus = measured["total"], measured["transfer"], measured["cpu"]
    direct = median(speeds["direct"])
    relayed, relayed_total = median(transfers["relay"]), median(speeds["relay"])
    # The whole download, set-up included, against the whole direct one.
    ratio = relayed_total / direct
    rounds = lambda k: ", ".join(f"{v:.0f}" for v in speeds[k])  # noqa: E731
    moving = ", ".join(f"{v:.0f}" for v in transfers["relay"])
    setups = ", ".join(f"{v:.2f}" for v in measured["setup"])
    cpu = {k: [median([c[i] for c in cpus[k]]) for i in range(3)] for k in cpus}
    bench.row("m", f"(m) download_file through the relay, {human(SIZE)}",
              SIZE / MiB / relayed_total, relayed_total,
              f"relayed {relayed_total:.0f} MiB/s over the whole download, {ratio:.0%} of direct "
              f"{direct:.0f} MiB/s in the same run (target ≥ 50%); median of {ROUNDS} each "
              f"(relayed {rounds('relay')}; direct {rounds('direct')}). Set-up until the relay "
              f"was paired {setups} s; once paired {relayed:.0f} MiB/s ({moving}). "
              f"CPU s per GiB, relayed vs direct: tracker "
              f"{cpu['relay'][0]:.2f} vs {cpu['direct'][0]:.2f}, seeder {cpu['relay'][1]:.2f} vs "
              f"{cpu['direct'][1]:.2f}, downloader {cpu['relay'][2]:.2f} vs "
              f"{cpu['direct'][2]:.2f}", "yes" if ratio >= 0.5 else "no")
    own, total = limited
    own_ok = 0.8 * RATE <= own <= 1.1 * RATE
    total_ok = 0.8 * TOTAL <= total <= 1.1 * TOTAL
    bench.row("m.rate", f"(m) relay rate limits: --relay-rate {human(RATE)}, --relay-total "
              f"{human(TOTAL)}", None, None,
              f"one relay moved {own / MiB:.2f} MiB/s (its own limit {RATE / MiB:.0f}); "
              f"{RATE_PAIRS} at once {total / MiB:.2f} MiB/s together (the total "
              f"{TOTAL / MiB:.0f}); both directions counted, {RATE_SECS:.0f} s each "
              f"(target: within -20%/+10% of the limit)", "yes" if own_ok and total_ok else "no")
    per_kib = memory["per_pair"] / KiB
    bench.row("m.mem", f"(m) tracker memory per relayed connection, {PAIRS} at once", None,
              None,
              f"{per_kib:.0f} KiB per relay (VmRSS {memory['base'] / MiB:.1f} → peak "
              f"{memory['peak'] / MiB:.1f} MiB while {human(memory['moved'])} crossed in "
              f"{memory['secs']:.1f} s; {memory['paired_rss'] / MiB:.1f} MiB once paired, "
              f"before traffic) (target < 256 KiB)", "yes" if per_kib < 256 else "no")


def rate_limits(bench):
    """One relay under --relay-rate, then RATE_PAIRS relays under --relay-total (each below
    its own rate), on a pair of their own: what they moved per second (both directions)."""
    pair = TrackerPair(bench, "m-rate", extra=["--relay-rate", str(RATE), "--relay-total",
                                              str(TOTAL)])
    try:
        pair.start(1)
        pair.start(2)
        primary = pair.wait_synced(timeout=60)
        pid = pair.procs[primary].pid
        client = [bench.bin("p2p-bench-client"), "--tracker",
                  f"127.0.0.1:{pair.ports[primary]}", "relay-pairs",
                  "--password", "bench-relay-pw-4821", "--seconds", str(RATE_SECS)]
        one = pairs(bench, client + ["--prefix", "one", "--pairs", "1"], pid)
        many = pairs(bench, client + ["--prefix", "many", "--pairs", str(RATE_PAIRS)], pid)
    except BenchError as e:
        e.logs += pair.logs()
        raise
    finally:
        pair.stop_all()
    return one["moved"] / one["secs"], many["moved"] / many["secs"]


def median(values):
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def rss(pid):
    return proc_field(pid, "status", "VmRSS") * 1024


# -- memory ------------------------------------------------------------------------------------


def relay_memory(bench, pair, primary):
    pid = pair.procs[primary].pid
    client = [bench.bin("p2p-bench-client"), "--tracker", f"127.0.0.1:{pair.ports[primary]}",
              "relay-pairs", "--password", "bench-relay-pw-4821"]
    out = pairs(bench, client + ["--prefix", "load", "--pairs", str(PAIRS), "--seconds", "3"], pid)
    base = out["base"]
    out["per_pair"] = max(0, out["peak"] - base) / PAIRS
    log(f"(m) tracker VmRSS {base / MiB:.1f} MiB before, {out['paired_rss'] / MiB:.1f} MiB with "
        f"{PAIRS} relays paired, peak {out['peak'] / MiB:.1f} MiB with traffic")
    return out


def pairs(bench, argv, pid):
    """Runs `relay-pairs`: once it has made its accounts, takes the tracker's VmRSS as the
    baseline and lets it open the relays, then samples the VmRSS every 20 ms until it is done.
    Returns the baseline, the RSS once every relay was paired, the peak, and what it moved."""
    logp = bench.tmp / "m" / "relay-pairs.log"
    proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=open(logp, "ab"), cwd=bench.tmp,
                            env=bench.env, start_new_session=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while not lines:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise BenchError("p2p-bench-client relay-pairs did not get ready", [logp])
        time.sleep(0.02)
    time.sleep(0.5)  # the tracker's last answers settle
    base = rss(pid)
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    peak, paired_rss = base, None
    while proc.poll() is None:
        now = rss(pid)
        peak = max(peak, now)
        if paired_rss is None and len(lines) > 1:
            paired_rss = now
        if time.monotonic() > deadline:
            proc.kill()
            raise BenchError("p2p-bench-client relay-pairs did not finish in 300 s", [logp])
        time.sleep(0.02)
    reader.join(10)
    if proc.returncode != 0:
        raise BenchError(f"p2p-bench-client relay-pairs failed (exit {proc.returncode})", [logp])
    try:
        done = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BenchError(f"p2p-bench-client relay-pairs printed {lines!r}", [logp])
    return {"base": base, "peak": peak, "paired_rss": paired_rss or peak,
            "moved": done["moved"], "secs": done["seconds"]}


# -- throughput --------------------------------------------------------------------------------


def throughput(bench, pair, primary, daemons):
    files = bench.tmp / "m" / "files"
    files.mkdir(parents=True, exist_ok=True)
    path = files / "relay.bin"
    log(f"writing {human(SIZE)} of random data to {path}")
    h = hashlib.sha1()
    with open(path, "wb") as f:
        for _ in range(SIZE // (8 * MiB)):
            chunk = os.urandom(8 * MiB)
            f.write(chunk)
            h.update(chunk)
    sha1 = h.hexdigest()
    seed = daemon(bench, pair, daemons, "m-seed")
    seed.register(owner=None)
    seed.upload(path)
    wait_listed(seed, path.name)
    speeds = {"direct": [], "relay": []}
    cpus = {"direct": [], "relay": []}
    transfers = {"direct": [], "relay": []}
    setups = []
    for r in range(ROUNDS):
        order = ("direct", "relay") if r % 2 == 0 else ("relay", "direct")
        for way in order:
            extra = ["--connect-via", "relay"] if way == "relay" else []
            d = daemon(bench, pair, daemons, f"m-{way}-{r}", extra)
            d.register(owner=seed)
            opened = count(pair.log_path(primary), OPENED)
            tracker = pair.procs[primary].pid
            cpu0 = [cpu_seconds(p) for p in (tracker, seed.pid, d.pid)]
            started = time.time()
            try:
                (secs,), (dest,) = download(bench, [(d, path.name)], SIZE, timeout_for(SIZE))
                cpu = [cpu_seconds(p) - c for p, c in zip((tracker, seed.pid, d.pid), cpu0)]
                verify(dest, sha1, f"(m) {way} download")
            finally:
                retire([d])
            gib = SIZE / (1 << 30)
            cpus[way].append([c / gib for c in cpu])
            relays = count(pair.log_path(primary), OPENED) - opened
            if way == "relay" and relays < 1:
                raise BenchError(f"the relayed download of round {r} opened no relay", [d.log])
            if way == "direct" and relays:
                raise BenchError(f"the direct download of round {r} opened {relays} relay(s)",
                                 [d.log])
            # The relayed download waits for the seeder's next poll before a byte moves: its
            # transfer runs from the tracker's `relay opened`.
            setup = 0.0
            if way == "relay":
                setup = pair.logged_after(primary, OPENED, started)
                if setup is None or setup >= secs:
                    raise BenchError(f"no `{OPENED}` line during round {r}", pair.logs())
                setups.append(setup)
            speeds[way].append(SIZE / MiB / secs)
            transfers[way].append(SIZE / MiB / (secs - setup))
            log(f"(m) round {r}: {way} {SIZE / MiB / secs:.0f} MiB/s, "
                f"{SIZE / MiB / (secs - setup):.0f} MiB/s after {setup:.2f} s of set-up; "
                f"CPU s/GiB: tracker "
                f"{cpus[way][-1][0]:.2f}, seeder {cpus[way][-1][1]:.2f}, downloader "
                f"{cpus[way][-1][2]:.2f}")
    return {"total": speeds, "transfer": transfers, "setup": setups, "cpu": cpus}


def daemon(bench, pair, daemons, name, extra=()):
    d = Daemon(bench, name, dir=pair.dir / name, tracker_info=pair.info)
    daemons.append(d)
    d.start(extra=list(extra))
    return d


def wait_listed(seed, name):
    deadline = time.monotonic() + 30
    while True:
        files = seed.ctl("list_files", GROUP).get("files", [])
        if any(f.get("name") == name and f.get("seeders") == 1 for f in files):
            return
        if time.monotonic() > deadline:
            raise BenchError(f"{name} is not listed with its seeder after 30 s: {files}",
                             [seed.log])
        time.sleep(POLL)


def count(path, text):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace").count(text)
    except OSError:
        return 0
