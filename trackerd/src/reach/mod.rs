//! Reachability on the tracker's side: where each daemon is and whether it can be reached
//! there ([`places`], checked by [`probe`]), and the invitations that set up a hole punch or a
//! relay between two daemons ([`invites`]). All of it lives in memory only, like the swarm:
//! daemons announce and poll every few seconds, so a restarted tracker or the standby after a
//! failover has it back at once.

pub mod invites;
pub mod places;
pub mod probe;

use invites::Invites;
use places::Places;

/// What [`crate::commands::Ctx::reach`] guards.
#[derive(Debug, Default)]
pub struct ReachBook {
    pub places: Places,
    pub invites: Invites,
}
