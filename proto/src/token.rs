//! Random identifiers: session tokens and request ids.

/// A fresh 256-bit session token, as 64 lowercase hex characters.
pub fn new_session_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A fresh 128-bit request id, as 32 lowercase hex characters. A retried request reuses its id
/// so the tracker applies it at most once.
pub fn new_request_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// True when `token` has the shape of a session token (64 hex characters).
pub fn is_session_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True when `id` has the shape of a request id (16 to 64 hex characters).
pub fn is_request_id(id: &str) -> bool {
    (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit())
}
