//! The shared vocabulary of the p2p file sharing system.
//!
//! Every message, frame limit, identifier rule and timeout that crosses a process boundary is
//! defined here, so `trackerd`, `p2pd` and `p2pctl` cannot drift apart.
//!
//! Three protocols exist:
//! - the tracker protocol ([`tracker`]): `p2pd` ↔ `trackerd`, TCP, JSON frames;
//! - the control protocol ([`control`]): `p2pctl` ↔ `p2pd`, Unix socket, JSON frames;
//! - the peer protocol ([`peer`]): `p2pd` ↔ `p2pd`, TCP, binary piece frames;
//! - the cluster protocol ([`cluster`]): `trackerd` ↔ `trackerd`, TCP, JSON frames.
//!
//! What the tracker and control protocols both show (groups, files) is in [`views`].
//!
//! Each JSON message carries `v`, its protocol's version; a frame whose `v` differs is refused
//! with [`FrameError::VersionMismatch`] before the rest of it is looked at.

pub mod admission;
pub mod bitfield;
pub mod cluster;
pub mod control;
pub mod crypto;
pub mod error;
pub mod files;
pub mod frame;
pub mod grant;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod logging;
pub mod paths;
pub mod peer;
pub mod rate;
pub mod reach;
pub mod refusal_log;
pub mod service;
pub mod signals;
pub mod tls;
pub mod token;
pub mod tracker;
pub mod tracker_info;
pub mod views;

pub use error::{ErrorKind, ErrorReply};
pub use frame::{FrameError, Message, MessageStream};
