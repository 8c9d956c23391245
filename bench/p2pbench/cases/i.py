"""(i) tracker failover: a tracker pair of its own (<tmp>/i/), primary + caught-up standby, and
a logged-in p2pd. `kill -9` of the primary, then the time until `p2pctl list_groups` succeeds,
--failovers times (median, max); the same with SIGSTOP (a frozen primary). Target (kill -9):
every one < 3 s."""

import signal
import time

from ..cluster import Daemon, TrackerPair
from ..report import median
from ..util import BenchError, log

LABEL = "(i) tracker failover"


def run(bench):
    n = bench.args.failovers
    pair = TrackerPair(bench, "i")
    client = None
    try:
        pair.start(1)  # first: it creates the pair's cluster.key
        pair.start(2)
        pair.wait_synced(timeout=60)
        client = Daemon(bench, "failover", dir=pair.dir / "client", tracker_info=pair.info)
        client.start()
        client.ctl("create_user", client.user, client.password)
        client.ctl("login", client.user, client.password)
        client.ctl("create_group", "failover")
        base = []
        for _ in range(5):
            t0 = time.monotonic()
            client.ctl("list_groups")
            base.append(time.monotonic() - t0)
        kills = [failover_round(pair, client, signal.SIGKILL, r + 1, n) for r in range(n)]
        stops = [failover_round(pair, client, signal.SIGSTOP, r + 1, n) for r in range(n)]
        pair.wait_synced()  # the last frozen primary has rejoined as the standby
    except BenchError as e:
        e.logs += pair.logs() + ([client.log] if client else [])
        raise
    finally:
        if client is not None:
            client.stop(logout=False)
        pair.stop_all()

    def summary(rounds):
        secs = [r["secs"] for r in rounds]
        took = [r["takeover"] for r in rounds if r["takeover"] is not None]
        failed = sum(len(r["failures"]) for r in rounds)
        text = (f"median {median(secs):.3f} s, max {max(secs):.3f} s (each: "
                + ", ".join(f"{x:.3f}" for x in secs) + ")")
        if took:
            text += f"; the standby logged its takeover after median {median(took):.3f} s"
        if len(took) < len(rounds):
            text += f" ({len(rounds) - len(took)} takeover(s) not found in the log)"
        if failed:
            text += f"; {failed} p2pctl attempt(s) failed before the success"
        return text

    worst = max(r["secs"] for r in kills)
    bench.row("i", f"(i) tracker failover: kill -9 of the primary, {n}×",
              median([r["secs"] for r in kills]), None,
              f"time from the kill until `p2pctl list_groups` (started right after it) "
              f"succeeds: {summary(kills)}; target < 3 s for every kill; list_groups "
              f"without a failover takes {median(base) * 1000:.0f} ms; the kernel closes "
              f"a killed process's connections at once (a crashed host is more like the "
              f"SIGSTOP row)",
              "yes" if worst < 3 else "no")
    bench.row("i.stop", f"(i) tracker failover: SIGSTOP of the primary, {n}×",
              median([r["secs"] for r in stops]), None,
              f"time from the freeze until `p2pctl list_groups` succeeds: {summary(stops)}; "
              f"no target; after SIGCONT the old primary rejoined as the standby each time")


def failover_round(pair, client, sig, r, n):
    """Kills (SIGKILL) or freezes (SIGSTOP) the primary of the settled pair and times
    `p2pctl list_groups` from then until one succeeds; brings the victim back (restart or
    SIGCONT) without waiting for it."""
    what = "kill -9" if sig == signal.SIGKILL else "SIGSTOP"
    victim = pair.wait_synced()
    client.ctl("list_groups")  # the daemon's last tracker is the primary, as in real use
    wall, t0 = time.time(), time.monotonic()
    pair.signal(victim, sig)
    failures = []
    while True:
        args = ["list_groups"]
        rc, out, err = client._run(args, timeout=60)
        secs = time.monotonic() - t0
        try:
            client.check_reply(args, rc, out, err)
            break
        except BenchError as e:
            failures.append(f"{secs:.2f} s: {e}")
            if secs > 60:
                raise BenchError(f"{what} of trackerd {victim}: no list_groups succeeded in "
                                 f"60 s: {failures}", [client.log] + pair.logs())
    takeover = pair.logged_after(3 - victim, "taking over as primary", wall)
    log(f"(i) {what} {r}/{n} of trackerd {victim} (primary): list_groups succeeded after "
        f"{secs:.3f} s; trackerd {3 - victim} logged its takeover after "
        + ("?" if takeover is None else f"{takeover:.3f} s")
        + (f"; failed attempts: {failures}" if failures else ""))
    if sig == signal.SIGKILL:
        pair.start(victim)  # on its old data dir; it rejoins as the standby
    else:
        pair.signal(victim, signal.SIGCONT)
    return {"secs": secs, "failures": failures, "takeover": takeover}
