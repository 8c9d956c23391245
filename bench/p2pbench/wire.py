"""The tracker protocol spoken directly, for case (j): no p2pctl process start, no p2pd.

The protocol runs inside TLS with raw public keys, which Python's ssl module does not speak,
so the calls go through `p2p-bench-client` (bench/client/), built with the workspace. It does
the timing itself: one process per batch of calls, so process start-up is not measured."""

import json
import subprocess

from .util import BenchError


class TrackerClient:
    """Calls to one tracker at 127.0.0.1:`port` through the bench client binary."""

    def __init__(self, binary, port):
        self.binary = str(binary)
        self.addr = f"127.0.0.1:{port}"

    def _run(self, args, timeout):
        argv = [self.binary, "--tracker", self.addr, *args]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"p2p-bench-client {args[0]} did not finish in {timeout} s")
        if r.returncode != 0:
            raise BenchError(f"p2p-bench-client {args[0]} failed: {r.stderr.strip()}")
        return json.loads(r.stdout)

    def call(self, call, user=None, password=None, timeout=60):
        """One call (logged in as `user` if given); returns the reply."""
        login = ["--user", user, "--password", password] if user else []
        return self._run(["call", *login, json.dumps(call)], timeout)

    def timed(self, user, password, template, calls, connections=1, timeout=600):
        """`calls` calls of `template` (`{k}` numbered) over `connections` concurrent
        connections; returns {"total": s, "latencies": [s, ...]}."""
        return self._run(["timed", "--user", user, "--password", password,
                          "--connections", str(connections), "--calls", str(calls),
                          json.dumps(template)], timeout)
