//! Relayed connections through the tracker: both daemons connect out to the tracker, which
//! passes bytes between them; TLS between the daemons runs end to end inside.
//!
//! (Not implemented yet.)
