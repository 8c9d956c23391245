//! Keeps one mapping for as long as the daemon runs: makes it, renews it, makes it again after
//! a change of network or a failed renewal, and removes it when the daemon stops. Publishes
//! every change in the watch channel the announcer reads. The timing is [`super::schedule`]'s.

use super::gateway::{self, Network, NetworkError};
use super::natpmp::{self, PmpError};
use super::schedule::{Backoff, NETWORK_CHECK, renewal_after};
use super::upnp::{self, UpnpError};
use super::{Mapping, PortMapping};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

/// How long the daemon's exit may wait for the mapping's removal (and for a request under way
/// when it was told to stop, so that a mapping just made is removed too).
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long the removal of the old network's mapping may take after a change of network: the
/// old gateway is often out of reach by then.
const STALE_REMOVAL: Duration = Duration::from_secs(2);

/// Why there is no mapping.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("UPnP: {0}")]
    Upnp(#[from] UpnpError),
    #[error("PCP/NAT-PMP: {0}")]
    Pmp(#[from] PmpError),
    #[error("UPnP: {upnp}; PCP/NAT-PMP: {pmp}")]
    Neither { upnp: UpnpError, pmp: PmpError },
}

/// A mapping held on the gateway.
enum Held {
    Upnp(upnp::Held),
    Pmp(natpmp::Held),
}

impl Held {
    fn mapping(&self) -> Mapping {
        match self {
            Held::Upnp(held) => held.mapping(),
            Held::Pmp(held) => held.mapping(),
        }
    }

    async fn renew(&mut self) -> Result<Mapping, Failure> {
        match self {
            Held::Upnp(held) => Ok(held.renew().await?),
            Held::Pmp(held) => Ok(held.renew().await?),
        }
    }

    async fn remove(self) -> Result<(), Failure> {
        match self {
            Held::Upnp(held) => Ok(held.remove().await?),
            Held::Pmp(held) => Ok(held.remove().await?),
        }
    }
}

/// One attempt to map `port` (asking for external port `want`) with the protocols `mode`
/// allows: UPnP first under `auto`, then PCP/NAT-PMP.
async fn attempt(
    mode: PortMapping,
    network: &Network,
    port: u16,
    want: u16,
) -> Result<Held, Failure> {
    match mode {
        PortMapping::Upnp => Ok(Held::Upnp(upnp::map(network, port, want).await?)),
        PortMapping::Natpmp => Ok(Held::Pmp(natpmp::map(network, port, want).await?)),
        // (`off` never gets here: `run` returns first.)
        PortMapping::Auto | PortMapping::Off => match upnp::map(network, port, want).await {
            Ok(held) => Ok(Held::Upnp(held)),
            Err(upnp) => match natpmp::map(network, port, want).await {
                Ok(held) => Ok(Held::Pmp(held)),
                Err(pmp) => Err(Failure::Neither { upnp, pmp }),
            },
        },
    }
}

/// An operation cut short by the shutdown: what it gave if it finished within the grace, and
/// the deadline of the grace.
struct Stopping<T> {
    finished: Option<T>,
    deadline: Instant,
}

/// Runs `op`; if the shutdown comes first, gives it until the end of [`SHUTDOWN_GRACE`].
async fn raced<T>(
    shutdown: &CancellationToken,
    op: impl Future<Output = T>,
) -> Result<T, Stopping<T>> {
    let mut op = std::pin::pin!(op);
    tokio::select! {
        biased;
        out = &mut op => Ok(out),
        () = shutdown.cancelled() => {
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            let finished = timeout_at(deadline, op).await.ok();
            Err(Stopping { finished, deadline })
        }
    }
}

/// The state of the mapping and the times of the next things to do.
struct Keeper {
    port: u16,
    mode: PortMapping,
    out: watch::Sender<Option<Mapping>>,
    held: Option<Held>,
    /// The network the mapping was made in, or the last attempt ran in.
    network: Option<Network>,
    /// The external port to ask for: the listening port, or the one of the last mapping.
    want: u16,
    backoff: Backoff,
    /// When to renew (with a mapping) or try again (without).
    due: Instant,
    /// When to read the network again.
    next_check: Instant,
    /// The last failure logged, so that a retry failing alike logs nothing new.
    reported: Option<String>,
}

/// Keeps a mapping of `port` until `shutdown`, then removes it (see [`super::run`]).
pub(super) async fn keep(
    port: u16,
    mode: PortMapping,
    out: watch::Sender<Option<Mapping>>,
    shutdown: CancellationToken,
) {
    let now = Instant::now();
    let mut keeper = Keeper {
        port,
        mode,
        out,
        held: None,
        network: None,
        want: port,
        backoff: Backoff::new(),
        due: now,
        next_check: now + NETWORK_CHECK,
        reported: None,
    };
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = sleep_until(keeper.due.min(keeper.next_check)) => {}
        }
        if Instant::now() >= keeper.next_check {
            keeper.next_check = Instant::now() + NETWORK_CHECK;
            if let Some(stale) = keeper.check_network() {
                match raced(&shutdown, timeout(STALE_REMOVAL, stale.remove())).await {
                    Ok(Ok(Ok(()))) => tracing::debug!("the old network's port mapping removed"),
                    Ok(Ok(Err(failure))) => {
                        tracing::debug!(reason = %failure, "the old network's port mapping not removed")
                    }
                    Ok(Err(_)) => tracing::debug!("the old network's gateway did not answer"),
                    Err(stopping) => {
                        keeper.stop(stopping.deadline).await;
                        return;
                    }
                }
            }
        }
        if Instant::now() < keeper.due {
            continue;
        }
        if let Some(held) = keeper.held.as_mut() {
            match raced(&shutdown, held.renew()).await {
                Ok(Ok(mapping)) => keeper.renewed(mapping),
                Ok(Err(failure)) => keeper.renewal_failed(&failure),
                // Renewed or not, the mapping is still ours to remove.
                Err(stopping) => {
                    keeper.stop(stopping.deadline).await;
                    return;
                }
            }
            continue;
        }
        let network = match gateway::current() {
            Ok(network) => network,
            Err(e) => {
                keeper.failed(&Failure::from(e), None);
                continue;
            }
        };
        match raced(&shutdown, attempt(mode, &network, port, keeper.want)).await {
            Ok(Ok(held)) => keeper.made(network, held),
            Ok(Err(failure)) => keeper.failed(&failure, Some(network)),
            Err(stopping) => {
                if let Some(Ok(held)) = stopping.finished {
                    keeper.held = Some(held);
                }
                keeper.stop(stopping.deadline).await;
                return;
            }
        }
    }
    keeper.stop(Instant::now() + SHUTDOWN_GRACE).await;
}

impl Keeper {
    fn publish(&self, mapping: Option<Mapping>) {
        // Unlike `send`, this stores the value even while no one is subscribed.
        self.out.send_if_modified(|current| {
            let changed = *current != mapping;
            *current = mapping;
            changed
        });
    }

    fn made(&mut self, network: Network, held: Held) {
        let mapping = held.mapping();
        tracing::info!(
            protocol = mapping.protocol.as_str(),
            external = %mapping.external,
            internal = %std::net::SocketAddrV4::new(network.local, self.port),
            gateway = %network.gateway,
            lease = %lease_text(mapping.lifetime),
            "port mapping made"
        );
        self.publish(Some(mapping));
        self.reported = None;
        self.backoff.reset();
        self.want = mapping.external.port();
        self.due = Instant::now() + renewal_after(mapping.lifetime);
        self.network = Some(network);
        self.held = Some(held);
    }

    fn failed(&mut self, failure: &Failure, network: Option<Network>) {
        self.publish(None);
        let text = failure.to_string();
        let wait = self.backoff.next_wait();
        if self.reported.as_deref() != Some(text.as_str()) {
            tracing::info!(
                mode = ?self.mode,
                reason = %text,
                "no port mapping; trying again later"
            );
            self.reported = Some(text);
        } else {
            tracing::debug!(reason = %text, retry_in = ?wait, "no port mapping yet");
        }
        self.network = network;
        self.due = Instant::now() + wait;
    }

    fn renewed(&mut self, mapping: Mapping) {
        let before = *self.out.borrow();
        if before != Some(mapping) {
            tracing::info!(
                protocol = mapping.protocol.as_str(),
                external = %mapping.external,
                lease = %lease_text(mapping.lifetime),
                "port mapping changed on renewal"
            );
        } else {
            tracing::debug!(external = %mapping.external, "port mapping renewed");
        }
        self.publish(Some(mapping));
        self.want = mapping.external.port();
        self.due = Instant::now() + renewal_after(mapping.lifetime);
    }

    fn renewal_failed(&mut self, failure: &Failure) {
        let text = failure.to_string();
        tracing::warn!(reason = %text, "port mapping lost: its renewal failed; trying again later");
        self.held = None;
        self.publish(None);
        // The loss was logged; a retry that fails alike adds nothing.
        self.reported = Some(text);
        self.backoff.reset();
        self.due = Instant::now() + self.backoff.next_wait();
    }

    /// Reads the network again; if it changed, starts over at once in the new one, and gives
    /// the old network's mapping, to be removed.
    fn check_network(&mut self) -> Option<Held> {
        let current = gateway::current().ok();
        if current == self.network {
            return None;
        }
        let describe =
            |n: &Option<Network>| n.as_ref().map_or("none".to_string(), |n| n.to_string());
        let stale = self.held.take();
        if stale.is_some() {
            tracing::info!(
                from = %describe(&self.network),
                to = %describe(&current),
                "network changed; mapping the port again"
            );
            self.publish(None);
        } else {
            tracing::debug!(
                from = %describe(&self.network),
                to = %describe(&current),
                "network changed; trying a port mapping now"
            );
        }
        self.network = current;
        self.reported = None;
        self.backoff.reset();
        self.want = self.port;
        self.due = Instant::now();
        stale
    }

    /// Removes the mapping, if there is one, by `deadline`; publishes that there is none.
    async fn stop(&mut self, deadline: Instant) {
        self.publish(None);
        let Some(held) = self.held.take() else {
            return;
        };
        let external = held.mapping().external;
        match timeout_at(deadline, held.remove()).await {
            Ok(Ok(())) => tracing::info!(%external, "port mapping removed"),
            Ok(Err(failure)) => tracing::warn!(
                %external,
                reason = %failure,
                "port mapping not removed; it lapses with its lease"
            ),
            Err(_) => tracing::warn!(
                %external,
                "port mapping not removed within {SHUTDOWN_GRACE:?}; it lapses with its lease"
            ),
        }
    }
}

/// A lease for the log: `3600s`, or `permanent` (0).
fn lease_text(lifetime: Duration) -> String {
    if lifetime.is_zero() {
        "permanent".to_string()
    } else {
        format!("{}s", lifetime.as_secs())
    }
}
