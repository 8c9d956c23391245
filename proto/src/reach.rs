//! Reachability: how a daemon behind a NAT is found and connected to.
//!
//! A daemon tells the tracker, in every announcement, the port its peer listener accepts on,
//! the public address a port mapping (or the operator's `--public-addr`) gave it, and its
//! global IPv6 addresses. The tracker sees the address the daemon connects from, checks by
//! connecting back (TLS, the daemon's own key) which of those addresses reach the daemon, and
//! lists each peer with the address to dial and how it is reachable ([`Reachability`]).
//!
//! A downloader dials a reachable peer directly; a peer that is not reachable is asked,
//! through the tracker, to meet it: both connect to each other at once from their listening
//! ports (a hole punch, [`InviteKind::Punch`]), or both connect out to the tracker, which passes
//! the bytes between them ([`InviteKind::Relay`]). TLS between the two daemons runs end to end
//! over every one of these.
//!
//! See docs/ARCHITECTURE.md, "Reachability".

use crate::identity::Fingerprint;
use serde::{Deserialize, Serialize};
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How a daemon can be reached from outside its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// Its listening port answers at its public address as it is: no NAT in the way, or a port
    /// forward the operator made (`--public-addr`).
    Direct,
    /// A port mapping it asked its gateway for (UPnP-IGD, NAT-PMP or PCP) answers.
    Mapped,
    /// Nothing answers: peers reach it by a hole punch or through the relay.
    None,
}

impl Reachability {
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Direct => "direct",
            Reachability::Mapped => "mapped",
            Reachability::None => "none",
        }
    }
}

/// How one peer connection was made, as `show_downloads --json` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// Dialled at the address it listens on (IPv4 without a NAT in the way, or IPv6).
    Direct,
    /// Dialled at the port mapping its gateway made for it.
    Mapped,
    /// A simultaneous open of both sides' listening ports, coordinated by the tracker.
    Punched,
    /// Through the tracker's relay; end-to-end TLS inside.
    Relayed,
}

impl ConnectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionKind::Direct => "direct",
            ConnectionKind::Mapped => "mapped",
            ConnectionKind::Punched => "punched",
            ConnectionKind::Relayed => "relayed",
        }
    }
}

/// A public address a daemon claims for itself in an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicClaim {
    pub addr: SocketAddr,
    /// `Mapped` for a port mapping, `Direct` for `--public-addr`.
    pub how: Reachability,
}

/// Where a daemon can be reached, as it says in every announcement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listening {
    /// A public address other than "the address I connect from, at my listening port".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<PublicClaim>,
    /// Global IPv6 addresses of this machine; the listener accepts on them at its port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<Ipv6Addr>,
}

/// Whether `ip` is a unicast address routed on the internet: not loopback, link-local,
/// unique-local, multicast, unspecified or IPv4-mapped. Only those are announced and listed.
pub fn is_global_ipv6(ip: &Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xffc0) == 0xfe80
        || (first & 0xfe00) == 0xfc00
        || ip.to_ipv4_mapped().is_some())
}

/// Most IPv6 addresses one announcement may list; the rest is ignored.
pub const MAX_IPV6: usize = 4;

/// What the tracker tells a daemon about itself (`p2pctl status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// The address the tracker sees this daemon's connections come from.
    pub observed: String,
    /// The address peers are told to dial (`ip:port`).
    pub addr: String,
    /// What the tracker's connect-back check found; `None` while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachable: Option<Reachability>,
    /// The IPv6 addresses (`[ip]:port`) the check reached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6: Vec<String>,
}

/// A downloader's request, passed on by the tracker, that this daemon meet it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// Names the meeting (a relay's pairing id).
    pub id: String,
    /// The downloader.
    pub user: String,
    /// The downloader's key: the only one the TLS handshake that follows may present.
    pub key: Fingerprint,
    pub kind: InviteKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum InviteKind {
    /// Connect to `addr` from the listening port now: the downloader is doing the same.
    Punch { addr: String },
    /// Connect to the tracker that sent the invite and accept the relay named by the id.
    Relay,
}

/// How long an invite waits for the daemon it is for; a daemon polls every
/// [`POLL_EVERY`], so this covers a few polls.
pub const INVITE_TTL: Duration = Duration::from_secs(10);

/// How often a logged-in daemon polls the tracker for invites (and notices a failover), at
/// most: the tracker holds a poll up to [`POLL_HOLD`] and answers it as soon as an invite comes.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// How long the tracker holds a poll with no invite waiting: well under a tracker call's
/// attempt timeout (3.5 s), so a held poll is never taken for a frozen tracker.
pub const POLL_HOLD: Duration = Duration::from_millis(1500);

/// Most invites waiting for one daemon; more are refused until it polls.
pub const MAX_INVITES: usize = 64;

/// How long both sides of a hole punch keep trying.
pub const PUNCH_WINDOW: Duration = Duration::from_secs(8);

/// How long a relay waits for the invited daemon to connect.
pub const RELAY_PAIRING_TIMEOUT: Duration = Duration::from_secs(10);
