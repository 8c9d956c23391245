//! `signing_key`: the trackers' public key, which seeders use to check download grants
//! offline. Needs no login: the key is public (and the link to the tracker is authenticated).

use super::Ctx;
use p2p_proto::ErrorReply;
use p2p_proto::grant::public_key_hex;
use p2p_proto::tracker::TrackerReply;

pub async fn run(ctx: &Ctx) -> Result<TrackerReply, ErrorReply> {
    let key = ctx
        .store(|s| s.signing_key())
        .await?
        .ok_or_else(super::no_key)?;
    Ok(TrackerReply::SigningKey {
        public_key: public_key_hex(&key),
    })
}
