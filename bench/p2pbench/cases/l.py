"""(l) login answer time: a wrong password for an existing user beside a login as a user that
does not exist, on a tracker pair of its own (<tmp>/l/). The tracker checks an unknown user's
password against a decoy hash, so both take one argon2 check. Each name is tried once (after
five failures in a row an account is delayed, which is not what is measured here).
Target: the unknown user's median within 20% of the known one's."""

import statistics

from ..cluster import TrackerPair
from ..util import BenchError
from ..wire import TrackerClient

LABEL = "(l) login time: unknown user vs wrong password"

N = 20


def run(bench):
    pair = TrackerPair(bench, "l")
    try:
        pair.start(1)
        pair.start(2)
        primary = pair.wait_synced(timeout=60)
        client = TrackerClient(bench.bin("p2p-bench-client"), pair.ports[primary])
        known = [f"known{k}" for k in range(N)]
        for user in known:
            client.call({"op": "create_user", "user": user, "password": f"right-pw-{user}"})
        unknown = [f"nobody{k}" for k in range(N)]
        # Interleaved, so a drift of the machine's speed hits both alike.
        names = [name for pair_ in zip(known, unknown) for name in pair_]
        out = client._run(["logins", "--password", "wrong-pw-0000", *names], 300)
    except BenchError as e:
        e.logs += pair.logs()
        raise
    finally:
        pair.stop_all()
    kinds = set(out["errors"])
    if kinds != {"AuthFailed"}:
        raise BenchError(f"expected every login to fail with AuthFailed, got {sorted(map(str, kinds))}")
    lat = out["latencies"]
    known_ms = statistics.median(lat[0::2]) * 1000
    unknown_ms = statistics.median(lat[1::2]) * 1000
    ratio = unknown_ms / known_ms if known_ms else float("inf")
    bench.results["l"] = (known_ms, unknown_ms)
    bench.row("l", "(l) login answer: wrong password vs unknown user (median of "
              f"{N} each)", None, None,
              f"wrong password {known_ms:.1f} ms, unknown user {unknown_ms:.1f} ms "
              f"(ratio {ratio:.2f}; target 0.8–1.2)", "yes" if 0.8 <= ratio <= 1.2 else "no")
