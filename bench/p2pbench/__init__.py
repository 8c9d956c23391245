"""Benchmarks of the p2p file sharing system, in one command; prints a Markdown table.

    bench/run [--size 1G] [--rate 16M] [--only a,b,...] [--failovers 5] [--writes 2000]
              [--keep] [--tmpdir DIR] [--no-build] [--no-install]

Builds the release binaries, installs the reference tools it lacks (socat, aria2, opentracker,
mktorrent) with apt-get, then measures on loopback, in one temp dir:

  (a) raw baseline: the file over one TCP connection (socat), written with tee, hashed by openssl
  (b) download_file from one seeder            target: >= 80% of (a) and >= 2x (h)
  (c) download_file from four seeders
  (d) from four seeders with --upload-limit R  target: >= 3.4 R
  (e) one seeder, eight simultaneous downloaders of a quarter-size file: time until all are
      done, and what the seeder uploaded         target: < 3 copies of the file
  (f) upload_file hashing vs openssl dgst -sha1 (warm cache)   target: >= 90% of openssl
  (g) peak RSS (VmHWM) of the downloading p2pd of (b)          target: < 64 MiB
  (h) the transfer of (b) between two aria2c over a local opentracker
  (i) tracker failover: primary + caught-up standby and a logged-in p2pd; `kill -9` of the
      primary, then the time until `p2pctl list_groups` succeeds, --failovers times (median,
      max); the same with SIGSTOP (frozen primary)     target (kill -9): every one < 3 s
  (j) tracker writes (create_group) over the tracker protocol (p2p-bench-client, TLS),
      --writes sequential ones on one connection: writes/s and p50/p99 latency with the standby
      attached (synchronous replication) and with it killed (primary alone); p50 of a read
  (k) CPU seconds (user + system) per GiB of the downloading and the seeding p2pd of (b), TLS
      included, beside openssl dgst -sha1 of the file    target: downloader <= 2.0x openssl
  (l) login answer time, wrong password vs unknown user (p2p-bench-client)  target: within 20%
  (m) the tracker's relay (a tracker pair of its own, relay rates unlimited): a 256 MiB
      download through the relay only (p2pd --connect-via relay) vs a direct one, alternating,
      3 of each (median)                                  target: relayed >= 50% of direct;
      and the primary's VmRSS growth with 256 relays open and streaming at once
      (p2p-bench-client relay-pairs), per relay           target: < 256 KiB;
      and one relay at --relay-rate 4M, four at --relay-total 8M   target: within -20%/+10%

Every download is started with `p2pctl download_file` and timed from that command's start until
`p2pctl --json show_downloads` says complete (polled every 50 ms); every received file's SHA-1
is checked against the original. The table is also written to bench/results.md. Every process
the harness starts runs in its own process group and is killed on exit, error or Ctrl-C.

Python 3 standard library only. Timing asserts never belong in tests; this is where they live.

`bench/run` only calls `main`. One module per job (bench/README.md describes them): `cli` (the
options), `runner` (one run), `context` (`Bench`, what the cases share), `processes`, `tools`
(cargo, apt-get), `cluster` (trackers and p2pd), `wire` (the tracker protocol), `torrent`
(bencode), `report` (the table), `util`, and `cases/` with one module per case.
"""

from .cli import main

__all__ = ["main"]
