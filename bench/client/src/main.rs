//! `p2p-bench-client`: the tracker protocol spoken directly, for `bench/run`'s tracker cases:
//! no p2pctl process start and no p2pd between the clock and the tracker.
//!
//! ```text
//! p2p-bench-client --tracker ADDR [--fingerprint FP] call --user U --password P JSON
//! p2p-bench-client --tracker ADDR [--fingerprint FP] timed --user U --password P
//!     --connections N --calls M TEMPLATE
//! p2p-bench-client --tracker ADDR [--fingerprint FP] logins --password P USER...
//! ```
//!
//! `call` sends one call (no session when `--user` is absent) and prints the reply. `timed`
//! logs in, opens N connections (one key: one session) and sends M calls spread over them,
//! concurrently, each connection one call at a time; `{k}` in the template is replaced by the
//! call's number. It prints one JSON object: `{"total": seconds, "latencies": [seconds, ...]}`.
//! `logins` tries to log in as each USER in turn with password P on one connection and prints
//! `{"latencies": [...], "errors": [kind, ...]}` (a wrong password is expected).
//! `relay-pairs` opens many relayed connections at once and streams through them (see
//! [`relay`]).

mod relay;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use p2p_proto::MessageStream;
use p2p_proto::identity::{Fingerprint, Identity};
use p2p_proto::limits::MAX_TRACKER_FRAME;
use p2p_proto::tls::{self, Expect, TlsStream};
use p2p_proto::token::new_request_id;
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// The tracker to talk to.
    #[arg(long)]
    tracker: SocketAddr,
    /// Its key; without, any key is accepted (a benchmark on loopback).
    #[arg(long)]
    fingerprint: Option<Fingerprint>,
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// One call, printed.
    Call {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        password: Option<String>,
        /// The call, e.g. '{"op":"create_user","user":"u","password":"p"}'.
        call: String,
    },
    /// Timed calls over concurrent connections.
    Timed {
        #[arg(long)]
        user: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        #[arg(long)]
        calls: usize,
        /// The call, with `{k}` for the call's number.
        template: String,
    },
    /// Timed logins, one per user.
    Logins {
        #[arg(long)]
        password: String,
        users: Vec<String>,
    },
    /// Many relayed connections at once, then traffic through all of them.
    RelayPairs {
        /// Account names start with this (`<prefix>-seed`, `<prefix>-down`).
        #[arg(long, default_value = "relay")]
        prefix: String,
        #[arg(long)]
        password: String,
        #[arg(long, default_value_t = 64)]
        pairs: usize,
        /// How long the traffic goes on once every relay is paired.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

type Conn = MessageStream<TlsStream<TcpStream>>;

struct Client {
    tracker: SocketAddr,
    expect: Expect,
    identity: Identity,
}

impl Client {
    async fn connect(&self) -> Result<Conn> {
        let stream = TcpStream::connect(self.tracker)
            .await
            .with_context(|| format!("cannot connect to {}", self.tracker))?;
        stream.set_nodelay(true)?;
        let (stream, _) =
            tls::connect(stream, &self.identity, self.expect, Duration::from_secs(10))
                .await
                .with_context(|| format!("TLS with {}", self.tracker))?;
        Ok(MessageStream::new(stream, MAX_TRACKER_FRAME))
    }

    async fn login(&self, conn: &mut Conn, user: &str, password: &str) -> Result<String> {
        let call = TrackerCall::Login {
            user: user.into(),
            password: password.into(),
        };
        match ask(conn, None, call).await? {
            TrackerReply::LoggedIn { token, .. } => Ok(token),
            other => bail!("login answered {other:?}"),
        }
    }
}

async fn ask(conn: &mut Conn, session: Option<&str>, call: TrackerCall) -> Result<TrackerReply> {
    let request = TrackerRequest::new(new_request_id(), session.map(str::to_string), call);
    conn.send(&request).await?;
    let response: TrackerResponse = conn
        .recv()
        .await?
        .context("the tracker closed the connection")?;
    response
        .result
        .map_err(|e| anyhow::anyhow!("{:?}: {}", e.kind, e.message))
}

fn parse_call(text: &str) -> Result<TrackerCall> {
    serde_json::from_str(text).with_context(|| format!("not a tracker call: {text}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = Client {
        tracker: args.tracker,
        expect: args.fingerprint.map_or(Expect::AnyKey, Expect::Key),
        identity: Identity::ephemeral()?,
    };
    match args.task {
        Task::RelayPairs {
            prefix,
            password,
            pairs,
            seconds,
        } => {
            let seeder = Client {
                identity: Identity::ephemeral()?,
                ..client
            };
            let downloader = Client {
                tracker: args.tracker,
                expect: args.fingerprint.map_or(Expect::AnyKey, Expect::Key),
                identity: Identity::ephemeral()?,
            };
            let job = relay::Pairs {
                prefix,
                password,
                pairs,
                seconds,
            };
            relay::run(seeder, downloader, job).await?;
        }
        Task::Call {
            user,
            password,
            call,
        } => {
            let mut conn = client.connect().await?;
            let session = match (user, password) {
                (Some(u), Some(p)) => Some(client.login(&mut conn, &u, &p).await?),
                _ => None,
            };
            let reply = ask(&mut conn, session.as_deref(), parse_call(&call)?).await?;
            println!("{}", serde_json::to_string(&reply)?);
        }
        Task::Logins { password, users } => {
            let mut conn = client.connect().await?;
            let (mut latencies, mut errors) = (Vec::new(), Vec::new());
            for user in users {
                let call = TrackerCall::Login {
                    user,
                    password: password.clone(),
                };
                let request = TrackerRequest::new(new_request_id(), None, call);
                let t = Instant::now();
                conn.send(&request).await?;
                let response: TrackerResponse = conn
                    .recv()
                    .await?
                    .context("the tracker closed the connection")?;
                latencies.push(t.elapsed().as_secs_f64());
                errors.push(response.result.err().map(|e| format!("{:?}", e.kind)));
            }
            println!(
                "{}",
                serde_json::json!({"latencies": latencies, "errors": errors})
            );
        }
        Task::Timed {
            user,
            password,
            connections,
            calls,
            template,
        } => {
            let mut first = client.connect().await?;
            let token = client.login(&mut first, &user, &password).await?;
            let mut conns = vec![first];
            for _ in 1..connections.max(1) {
                conns.push(client.connect().await?);
            }
            let all: Vec<TrackerCall> = (0..calls)
                .map(|k| parse_call(&template.replace("{k}", &k.to_string())))
                .collect::<Result<_>>()?;
            let n = conns.len();
            let mut work: Vec<Vec<TrackerCall>> = (0..n).map(|_| Vec::new()).collect();
            for (k, call) in all.into_iter().enumerate() {
                work[k % n].push(call);
            }
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for (mut conn, calls) in conns.into_iter().zip(work) {
                let token = token.clone();
                tasks.spawn(async move {
                    let mut latencies = Vec::with_capacity(calls.len());
                    for call in calls {
                        let t = Instant::now();
                        ask(&mut conn, Some(&token), call).await?;
                        latencies.push(t.elapsed().as_secs_f64());
                    }
                    Ok::<_, anyhow::Error>(latencies)
                });
            }
            let mut latencies = Vec::with_capacity(calls);
            while let Some(done) = tasks.join_next().await {
                latencies.extend(done??);
            }
            let total = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({"total": total, "latencies": latencies})
            );
        }
    }
    Ok(())
}
