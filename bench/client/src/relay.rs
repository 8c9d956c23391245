//! `relay-pairs`: many relayed connections through one tracker at once, for the relay's memory
//! row of `bench/run` (case m).
//!
//! Makes two accounts, `<prefix>-seed` (owner of the group `<prefix>-group`, where it registers
//! a one-byte file from its key) and `<prefix>-down` (a member), prints `{"ready": true}` and
//! waits for a line on stdin, so the caller can take the tracker's baseline without the
//! accounts' password hashing in it. Then it opens `pairs` relays in batches: the downloader
//! sends `relay_open` with its grant on a connection of its own, the seeder polls for the
//! invites and joins each with `relay_accept`. Once every relay is paired it prints
//! `{"paired": N}` and streams through all of them at once for `seconds`: the seeder's side
//! sends bulk bytes, the downloader's side a trickle back, each direction closed at the end and
//! read to its end. Then it prints `{"moved": bytes, "seconds": s}`.

use crate::{Client, Conn, ask};
use anyhow::{Context, Result, bail};
use p2p_proto::tls::TlsStream;
use p2p_proto::token::new_request_id;
use p2p_proto::tracker::{TrackerCall, TrackerReply, TrackerRequest, TrackerResponse};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Relays opened before the seeder polls: fewer than the invites one daemon may have waiting.
const BATCH: usize = 32;
const FILE: &str = "relay-bench.bin";

pub struct Pairs {
    pub prefix: String,
    pub password: String,
    pub pairs: usize,
    pub seconds: f64,
}

pub async fn run(seeder: Client, downloader: Client, job: Pairs) -> Result<()> {
    let seed_user = format!("{}-seed", job.prefix);
    let down_user = format!("{}-down", job.prefix);
    let mut s = seeder.connect().await?;
    let mut d = downloader.connect().await?;
    for user in [&seed_user, &down_user] {
        let call = TrackerCall::CreateUser {
            user: user.clone(),
            password: job.password.clone(),
        };
        ask(&mut s, None, call).await?;
    }
    let s_token = seeder.login(&mut s, &seed_user, &job.password).await?;
    let d_token = downloader.login(&mut d, &down_user, &job.password).await?;
    let group_name = format!("{}-group", job.prefix);
    let group = || group_name.clone();
    ask(
        &mut s,
        Some(&s_token),
        TrackerCall::CreateGroup { group: group() },
    )
    .await?;
    ask(
        &mut d,
        Some(&d_token),
        TrackerCall::JoinGroup { group: group() },
    )
    .await?;
    let accept = TrackerCall::AcceptRequest {
        group: group(),
        user: down_user.clone(),
    };
    ask(&mut s, Some(&s_token), accept).await?;
    let meta = serde_json::from_value(serde_json::json!({
        "name": FILE, "size": 1,
        "sha1": "0000000000000000000000000000000000000000",
        "pieces": ["0000000000000000000000000000000000000000"],
    }))?;
    let upload = TrackerCall::UploadFile {
        group: group(),
        file: meta,
        port: 9,
    };
    ask(&mut s, Some(&s_token), upload).await?;
    // The accounts' password hashing is done: the caller may take its baseline now.
    println!("{}", serde_json::json!({"ready": true}));
    std::io::stdout().flush()?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go)?;

    let mut streams: Vec<(TlsStream<TcpStream>, bool)> = Vec::with_capacity(2 * job.pairs);
    while streams.len() < 2 * job.pairs {
        let batch = BATCH.min(job.pairs - streams.len() / 2);
        let peers = TrackerCall::Peers {
            group: group(),
            name: FILE.into(),
        };
        let TrackerReply::Peers { grant, peers, .. } = ask(&mut d, Some(&d_token), peers).await?
        else {
            bail!("peers answered something else");
        };
        let peer = peers
            .iter()
            .find(|p| p.user == seed_user)
            .context("the seeder is not listed")?
            .key;
        let mut opens = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let call = TrackerCall::RelayOpen {
                name: FILE.into(),
                peer,
                grant: grant.clone(),
            };
            let conn = downloader.connect().await?;
            opens.spawn(leg(conn, d_token.clone(), call));
        }
        // The seeder polls until it has every invite of the batch, then joins each.
        let mut invites = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while invites.len() < batch {
            if Instant::now() > deadline {
                bail!("{} of {batch} relay invites after 10 s", invites.len());
            }
            match ask(&mut s, Some(&s_token), TrackerCall::Poll).await? {
                TrackerReply::Polled { invites: got, .. } => invites.extend(got),
                other => bail!("poll answered {other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut accepts = tokio::task::JoinSet::new();
        for invite in invites {
            let conn = seeder.connect().await?;
            let call = TrackerCall::RelayAccept { invite: invite.id };
            accepts.spawn(leg(conn, s_token.clone(), call));
        }
        while let Some(up) = accepts.join_next().await {
            streams.push((up??, true));
        }
        while let Some(down) = opens.join_next().await {
            streams.push((down??, false));
        }
    }
    println!("{}", serde_json::json!({"paired": job.pairs}));
    std::io::stdout().flush()?;

    let started = Instant::now();
    let until = started + Duration::from_secs_f64(job.seconds);
    let mut flows = tokio::task::JoinSet::new();
    for (stream, seeder_side) in streams {
        flows.spawn(flow(stream, seeder_side, until));
    }
    let mut moved = 0u64;
    while let Some(done) = flows.join_next().await {
        moved += done??;
    }
    println!(
        "{}",
        serde_json::json!({"moved": moved, "seconds": started.elapsed().as_secs_f64()})
    );
    Ok(())
}

/// Sends `call` as the first request of `conn` and waits for `relaying`; the stream after it.
async fn leg(mut conn: Conn, token: String, call: TrackerCall) -> Result<TlsStream<TcpStream>> {
    let request = TrackerRequest::new(new_request_id(), Some(token), call);
    conn.send(&request).await?;
    let response: TrackerResponse = tokio::time::timeout(Duration::from_secs(20), conn.recv())
        .await
        .context("no answer to a relay request in 20 s")??
        .context("the tracker closed the relay leg")?;
    match response.result {
        Ok(TrackerReply::Relaying) => {}
        Ok(other) => bail!("a relay request answered {other:?}"),
        Err(e) => bail!("a relay request refused: {:?}: {}", e.kind, e.message),
    }
    let (stream, early) = conn.into_parts();
    if !early.is_empty() {
        bail!("{} bytes came with the relay's answer", early.len());
    }
    Ok(stream)
}

/// One leg's traffic: the seeder's side sends 16 KiB writes, the downloader's side 1 KiB every
/// 10 ms, until `until`; each closes its sending side then and reads to the end. Returns the
/// bytes this leg received.
async fn flow(stream: TlsStream<TcpStream>, seeder_side: bool, until: Instant) -> Result<u64> {
    let (mut rx, mut tx) = tokio::io::split(stream);
    let send = async move {
        let chunk = vec![0x5au8; if seeder_side { 16 * 1024 } else { 1024 }];
        while Instant::now() < until {
            tx.write_all(&chunk).await?;
            if !seeder_side {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tx.shutdown().await?;
        Ok::<_, anyhow::Error>(())
    };
    let receive = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut got = 0u64;
        loop {
            match rx.read(&mut buf).await {
                Ok(0) => return Ok::<_, anyhow::Error>(got),
                Ok(n) => got += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(got),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let ((), got) = tokio::try_join!(send, receive)?;
    Ok(got)
}
