//! The copying of a paired relay: bytes from each leg to the other, until both have closed,
//! one fails, nothing moves for the idle time, or the tracker stops.
//!
//! Each direction has one fixed buffer of [`COPY_BUF`] bytes and nothing queued beyond it: a
//! leg that does not read holds the other one back (TCP's own flow control), so memory does not
//! depend on how fast either side is. A leg that closes its sending side (TLS close_notify, or
//! a TCP close without one: the daemons' own TLS inside detects truncation) has the other
//! leg's sending side closed in turn, while the other direction goes on (a half-close). Every
//! write has a timeout; the rate limits are waited for before the bytes are written.

use super::rate::ByteRate;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Bytes read at once in each direction: one TLS record's worth.
pub const COPY_BUF: usize = 16 * 1024;

/// A write that takes longer than this (the leg stopped reading) ends the relay.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What holds a relay back.
#[derive(Clone, Copy)]
pub struct Limits<'a> {
    /// This relay's own rate (both directions together).
    pub own: Option<&'a ByteRate>,
    /// The tracker's rate over every relay.
    pub total: Option<&'a ByteRate>,
    /// How long the relay may go without a byte in either direction.
    pub idle: Duration,
}

impl Limits<'_> {
    async fn take(&self, bytes: usize) {
        if let Some(own) = self.own {
            own.take(bytes).await;
        }
        if let Some(total) = self.total {
            total.take(bytes).await;
        }
    }
}

/// Why a relay ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Both legs closed their sending side.
    Closed,
    /// Nothing moved for the idle time.
    Idle,
    /// A leg failed (reset, or it stopped reading).
    Failed(String),
    /// The tracker is stopping.
    Shutdown,
}

impl End {
    pub fn as_str(&self) -> &str {
        match self {
            End::Closed => "closed",
            End::Idle => "idle",
            End::Failed(why) => why,
            End::Shutdown => "tracker stopping",
        }
    }
}

/// What a relay moved, and why it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// From the first leg to the second.
    pub forward: u64,
    /// From the second leg to the first.
    pub back: u64,
    pub end: End,
}

/// Copies between `a` and `b` until the relay ends. `a_early` are bytes of `a` already read
/// (they go to `b` first), `b_early` likewise.
pub async fn pipe<A, B>(
    a: A,
    b: B,
    a_early: &[u8],
    b_early: &[u8],
    limits: Limits<'_>,
    shutdown: &CancellationToken,
) -> Moved
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (a_read, a_write) = tokio::io::split(a);
    let (b_read, b_write) = tokio::io::split(b);
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let forward = AtomicU64::new(0);
    let back = AtomicU64::new(0);
    let activity = Activity { start, last: &last };
    let both = async {
        tokio::try_join!(
            pump(a_read, b_write, a_early, limits, activity, &forward),
            pump(b_read, a_write, b_early, limits, activity, &back),
        )
    };
    let end = tokio::select! {
        done = both => match done {
            Ok(_) => End::Closed,
            Err(e) => End::Failed(e.to_string()),
        },
        () = activity.idle(limits.idle) => End::Idle,
        () = shutdown.cancelled() => End::Shutdown,
    };
    Moved {
        forward: forward.load(Ordering::Relaxed),
        back: back.load(Ordering::Relaxed),
        end,
    }
}

/// When a byte last moved, in milliseconds since the relay started.
#[derive(Clone, Copy)]
struct Activity<'a> {
    start: Instant,
    last: &'a AtomicU64,
}

impl Activity<'_> {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Returns once nothing has moved for `idle`.
    async fn idle(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let until = last + idle;
            if Instant::now() >= until {
                return;
            }
            tokio::time::sleep_until(until).await;
        }
    }
}

/// One direction: reads from `from`, writes to `to`, until `from` closes (then closes `to`'s
/// sending side) or either fails.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    early: &[u8],
    limits: Limits<'_>,
    activity: Activity<'_>,
    moved: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    if !early.is_empty() {
        limits.take(early.len()).await;
        send(&mut to, early).await?;
        moved.fetch_add(early.len() as u64, Ordering::Relaxed);
        activity.touch();
    }
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(n) => n,
            // A TCP close without TLS close_notify: an end like any other here.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return match tokio::time::timeout(WRITE_TIMEOUT, to.shutdown()).await {
                Ok(done) => done,
                Err(_) => Err(stalled()),
            };
        }
        activity.touch();
        limits.take(n).await;
        send(&mut to, &buf[..n]).await?;
        moved.fetch_add(n as u64, Ordering::Relaxed);
        activity.touch();
    }
}

async fn send<W: AsyncWrite + Unpin>(to: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    tokio::time::timeout(WRITE_TIMEOUT, async {
        to.write_all(bytes).await?;
        // TLS may keep a record buffered until flushed.
        to.flush().await
    })
    .await
    .unwrap_or_else(|_| Err(stalled()))
}

fn stalled() -> std::io::Error {
    std::io::Error::new(
        ErrorKind::TimedOut,
        format!("a leg stopped reading for {}s", WRITE_TIMEOUT.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    fn unlimited(idle: Duration) -> Limits<'static> {
        Limits {
            own: None,
            total: None,
            idle,
        }
    }

    #[tokio::test]
    async fn bytes_pass_both_ways_intact_and_a_half_close_is_passed_on() {
        let (mut alice, a) = duplex(4096);
        let (mut bob, b) = duplex(4096);
        let stop = CancellationToken::new();
        let relay = tokio::spawn(async move {
            pipe(
                a,
                b,
                b"early",
                b"",
                unlimited(Duration::from_secs(60)),
                &stop,
            )
            .await
        });
        let forward: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let back: Vec<u8> = (0..100_000u32).map(|i| (i % 241) as u8).collect();
        let (f, b2) = (forward.clone(), back.clone());
        let alice_side = tokio::spawn(async move {
            alice.write_all(&f).await.unwrap();
            // Alice is done sending, and still reads what bob sends.
            alice.shutdown().await.unwrap();
            let mut got = Vec::new();
            alice.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut got = Vec::new();
        let mut expected = b"early".to_vec();
        expected.extend_from_slice(&forward);
        // Bob reads all of alice's bytes, up to her close, before he sends his.
        bob.read_to_end(&mut got).await.unwrap();
        assert!(got == expected, "bob got {} bytes, not alice's", got.len());
        bob.write_all(&b2).await.unwrap();
        bob.shutdown().await.unwrap();
        assert!(alice_side.await.unwrap() == back, "alice got bob's bytes");
        let moved = relay.await.unwrap();
        assert_eq!(
            moved,
            Moved {
                forward: expected.len() as u64,
                back: back.len() as u64,
                end: End::Closed
            }
        );
    }

    #[tokio::test]
    async fn a_relay_where_nothing_moves_ends_after_the_idle_time() {
        let (mut alice, a) = duplex(4096);
        let (_bob, b) = duplex(4096);
        let stop = CancellationToken::new();
        let relay = tokio::spawn(async move {
            pipe(a, b, b"", b"", unlimited(Duration::from_millis(300)), &stop).await
        });
        alice.write_all(b"hello").await.unwrap();
        let moved = relay.await.unwrap();
        assert_eq!(moved.end, End::Idle);
        assert_eq!((moved.forward, moved.back), (5, 0));
    }

    #[tokio::test]
    async fn a_stopping_tracker_ends_every_relay() {
        let (_alice, a) = duplex(4096);
        let (_bob, b) = duplex(4096);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let relay = tokio::spawn(async move {
            pipe(a, b, b"", b"", unlimited(Duration::from_secs(300)), &token).await
        });
        stop.cancel();
        assert_eq!(relay.await.unwrap().end, End::Shutdown);
    }

    #[tokio::test]
    async fn a_leg_that_goes_away_ends_the_relay_for_both() {
        let (alice, a) = duplex(4096);
        let (mut bob, b) = duplex(4096);
        let stop = CancellationToken::new();
        let relay = tokio::spawn(async move {
            pipe(a, b, b"", b"", unlimited(Duration::from_secs(300)), &stop).await
        });
        drop(alice);
        // Bob sees the end of alice's direction ...
        let mut got = Vec::new();
        bob.read_to_end(&mut got).await.unwrap();
        assert!(got.is_empty());
        // ... and once he closes too, the relay is over.
        bob.shutdown().await.unwrap();
        let moved = relay.await.unwrap();
        assert!(
            matches!(moved.end, End::Closed | End::Failed(_)),
            "{moved:?}"
        );
    }

    #[tokio::test]
    async fn bytes_held_back_by_the_rate_limits_all_arrive() {
        // 512 KiB/s, a burst of 128 KiB: 384 KiB wait for tokens, about half a second.
        let own = ByteRate::new(512 * 1024, COPY_BUF as u32);
        let total = ByteRate::new(1 << 30, COPY_BUF as u32);
        let (mut alice, a) = duplex(64 * 1024);
        let (mut bob, b) = duplex(64 * 1024);
        let stop = CancellationToken::new();
        let relay = tokio::spawn(async move {
            let limits = Limits {
                own: Some(&own),
                total: Some(&total),
                idle: Duration::from_secs(300),
            };
            pipe(a, b, b"", b"", limits, &stop).await
        });
        let data: Vec<u8> = (0..512 * 1024u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        tokio::spawn(async move {
            alice.write_all(&sent).await.unwrap();
            alice.shutdown().await.unwrap();
            let mut rest = Vec::new();
            alice.read_to_end(&mut rest).await.unwrap();
        });
        let mut got = Vec::new();
        bob.read_to_end(&mut got).await.unwrap();
        assert!(
            got == data,
            "{} bytes arrived, not the ones sent",
            got.len()
        );
        bob.shutdown().await.unwrap();
        let moved = relay.await.unwrap();
        assert_eq!((moved.forward, moved.end), (data.len() as u64, End::Closed));
    }
}
