//! What clients see of the tracker pair: the standby redirects them to the primary, a seeder
//! tells a new primary what it shares within seconds of a failover, and a redirect to a
//! tracker outside the client's list is not followed in a busy loop.
//!
//! See [`p2p_e2e::failover`] for the starting state and the timing bounds.

use p2p_e2e::failover::{CATCH_UP_TIMEOUT, FAILOVER_BOUND, raw_call, settled_cluster};
use p2p_e2e::tls::{accept, new_identity};
use p2p_e2e::wire::{VERSION, error_of, json_frame};
use p2p_e2e::{
    Cluster, PIECE_SIZE, assert_file_content, make_group, password_of, wait_for_every,
    write_test_file,
};
use p2p_proto::identity::Identity;
use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[test]
fn standby_redirects_clients_to_the_primary() {
    let mut cluster = settled_cluster();
    // Asked directly, the standby names the primary.
    let reply = raw_call(cluster.tracker_addr(2), 71, json!({"op": "list_groups"}));
    let error = error_of(&reply);
    assert_eq!(error["kind"], "not_primary", "{reply}");
    assert_eq!(
        error["redirect"],
        cluster.tracker_addr(1).to_string(),
        "{reply}"
    );
    // A daemon whose tracker_info.txt lists the standby first follows the redirect.
    let reversed = cluster.root().join("tracker_info-reversed.txt");
    std::fs::write(
        &reversed,
        format!("{}\n{}\n", cluster.tracker_addr(2), cluster.tracker_addr(1)),
    )
    .unwrap();
    let mut gina = cluster.daemon_unstarted("gina");
    gina.set_tracker_info(&reversed);
    gina.start();
    gina.create_user("gina");
    gina.login("gina");
    assert_eq!(gina.ok(&["create_group", "g1"]), "created group g1");
    assert_eq!(
        gina.status()["tracker"],
        cluster.tracker_addr(1).to_string(),
        "p2pctl status names the primary it was redirected to"
    );
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);
    cluster.assert_no_panics();
}

/// After a failover, a seeder's daemon tells the new primary what it shares within seconds,
/// so a download can start (the tracker's swarm is soft state: the new primary's starts
/// empty).
#[test]
fn download_can_start_within_seconds_of_a_failover() {
    let mut cluster = settled_cluster();
    let sam = cluster.user("sam");
    let dora = cluster.user("dora");
    make_group(&sam, "g1", &[&dora]);
    let path = sam.dir().join("song.bin");
    let content = write_test_file(&path, 12, PIECE_SIZE as usize + 99);
    sam.ok(&["upload_file", "g1", &path.to_string_lossy()]);
    dora.wait_seeders("g1", "song.bin", 1);
    cluster.wait_caught_up(1, 2, CATCH_UP_TIMEOUT);

    cluster.kill9_tracker(1);
    let killed_at = Instant::now();
    let dest = dora.dir().join("song.bin");
    let args = ["download_file", "g1", "song.bin", &*dest.to_string_lossy()].map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut first_refusal = None;
    // Each try is a p2pctl command that p2pd may retry for a while: a pause between tries
    // keeps the test from adding a retry storm of its own.
    let accepted = wait_for_every(
        "download_file through the new primary to be accepted",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let (out, value) = dora.ctl_json(&args);
            if out.status.success() && value["ok"] == true {
                return Ok(killed_at.elapsed());
            }
            first_refusal.get_or_insert_with(|| (killed_at.elapsed(), value.clone()));
            Err(value.to_string())
        },
    );
    if let Some((at, refusal)) = &first_refusal {
        println!("download_file refused {at:?} after the kill: {refusal}");
    }
    println!("download_file accepted {accepted:?} after the kill");
    dora.wait_download("g1", "song.bin");
    assert_file_content(&dest, &content);
    assert!(
        accepted < FAILOVER_BOUND,
        "download_file was refused for {accepted:?} after the primary was killed (bound \
         {FAILOVER_BOUND:?}): the seeder did not re-announce to the new primary in time; first \
         refusal: {first_refusal:?}\n--- the seeder's log (tail) ---\n{}",
        sam.stderr_tail(40)
    );
    cluster.assert_no_panics();
}

/// A fake tracker on its own port: it answers a ping like a real standby and every other
/// request with `not_primary` and a redirect to an address no client knows. Counts those
/// requests.
struct RedirectingTracker {
    listener: TcpListener,
    addr: SocketAddr,
    /// Its TLS key.
    identity: Identity,
    redirected: AtomicUsize,
    stop: AtomicBool,
}

impl RedirectingTracker {
    fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        Self {
            listener,
            addr,
            identity: new_identity(),
            redirected: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// Accepts and serves connections, each in a thread of its own, until [`stop`](Self::stop).
    fn run(&self) {
        std::thread::scope(|conns| {
            for stream in self.listener.incoming() {
                if self.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    conns.spawn(|| self.serve(stream));
                }
            }
        })
    }

    fn serve(&self, tcp: TcpStream) {
        let Ok(mut s) = accept(tcp, &self.identity) else {
            return;
        };
        // A short read timeout only lets a connection notice `stop`; bytes read so far stay in
        // `pending`, so a timeout loses nothing.
        let _ = s.sock.set_read_timeout(Some(Duration::from_millis(200)));
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while pending.len() >= 4 {
                let len = u32::from_be_bytes(pending[..4].try_into().unwrap()) as usize;
                assert!(len < 1 << 20, "the client sent a {len}-byte frame");
                if pending.len() < 4 + len {
                    break;
                }
                let body: Vec<u8> = pending.drain(..4 + len).skip(4).collect();
                if !self.answer(&mut s, &body) {
                    return;
                }
            }
            match s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// Answers one request frame; false when the client is gone.
    fn answer(&self, s: &mut impl Write, body: &[u8]) -> bool {
        let request: Value = serde_json::from_slice(body).unwrap_or_default();
        // Like a real standby: a ping is answered, everything else redirected.
        let reply = if request["call"]["op"] == "ping" {
            json!({"v": VERSION, "id": request["id"], "result": {"Ok": {
                "reply": "pong", "tracker_no": 1}}})
        } else {
            self.redirected.fetch_add(1, Ordering::SeqCst);
            json!({"v": VERSION, "id": request["id"], "result": {"Err": {
                "kind": "not_primary",
                "message": "this tracker is the standby; the primary is 127.0.0.1:9",
                "redirect": "127.0.0.1:9"}}})
        };
        s.write_all(&json_frame(&reply))
            .and_then(|()| s.flush())
            .is_ok()
    }

    /// Makes [`run`](Self::run) and every connection end: the flag, then a connection of our
    /// own that wakes the blocking accept.
    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Stops a [`RedirectingTracker`] when dropped, so that a failing test does not leave its
/// threads running (a scoped thread would keep the test from ending).
struct StopOnDrop<'a>(&'a RedirectingTracker);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A tracker that answers every request with `not_primary` and a redirect to an address the
/// client does not know: the client must give up after its deadline without hammering it.
#[test]
fn a_redirect_outside_the_tracker_list_is_not_followed_in_a_busy_loop() {
    let cluster = Cluster::new();
    let fake = RedirectingTracker::bind();
    let info = cluster.root().join("tracker_info-fake.txt");
    std::fs::write(&info, format!("{}\n", fake.addr)).unwrap();

    let mut d = cluster.daemon_unstarted("hal");
    d.set_tracker_info(&info);
    let (error, took, before) = std::thread::scope(|s| {
        let server = s.spawn(|| fake.run());
        let _stop = StopOnDrop(&fake);
        let started = Instant::now();
        d.start();
        println!(
            "p2pd started in {:?}; {} request(s) so far",
            started.elapsed(),
            fake.redirected.load(Ordering::SeqCst)
        );
        let before = fake.redirected.load(Ordering::SeqCst);
        let since = Instant::now();
        let error = d.expect_kind(&["create_user", "hal", &password_of("hal")], "unavailable");
        let took = since.elapsed();
        fake.stop();
        server.join().unwrap();
        (error, took, before)
    });
    let n = fake.redirected.load(Ordering::SeqCst) - before;
    println!(
        "create_user failed after {took:?} and {n} request(s) (pings aside) to the redirecting \
         tracker: {error}"
    );
    // With a pause of 200 ms between rounds, a 12 s call makes a few dozen attempts.
    assert!(
        n <= 150,
        "one create_user sent {n} requests in {took:?} to a tracker that redirects elsewhere: \
         the client retries in a busy loop"
    );
}
