//! Length-prefixed JSON frames.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of JSON. Each protocol sets
//! a hard maximum; a longer length prefix is an error before any of the body is read, so a peer
//! cannot make us allocate more than that maximum. `recv` returns `Ok(None)` on a clean close
//! between frames and an error on a close in the middle of one.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder, Framed};

/// A message of one of the JSON protocols. `VERSION` is the protocol's version; every message
/// carries it in its `v` field.
pub trait Message: Serialize + DeserializeOwned {
    const VERSION: u32;
    /// The protocol's name, for error messages ("tracker", "control").
    const PROTOCOL: &'static str;
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of more than {max} bytes refused")]
    TooLarge { max: usize },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("{protocol} protocol version mismatch: got {got}, expected {expected}")]
    VersionMismatch {
        protocol: &'static str,
        got: u64,
        expected: u32,
    },
    #[error("malformed {protocol} message: {reason}")]
    Malformed {
        protocol: &'static str,
        reason: String,
    },
    #[error("no frame within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The codec every JSON protocol uses: a 4-byte big-endian length, then the body. It reports a
/// frame over the limit, and a stream that ends inside a frame, as typed [`FrameError`]s.
///
/// Unlike `LengthDelimitedCodec`, it never reserves a frame's declared size on reading the
/// header: the buffer grows only with the bytes that actually arrive, so a header claiming
/// 16 MiB followed by silence costs nothing. The limit can change on an open connection (it
/// is small until the other end is authenticated).
pub struct FrameCodec {
    max_frame: usize,
}

/// Length of the big-endian length prefix.
const HEADER: usize = 4;

impl FrameCodec {
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        let Some(header) = src.get(..HEADER) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge {
                max: self.max_frame,
            });
        }
        if src.len() < HEADER + len {
            return Ok(None);
        }
        src.advance(HEADER);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated),
        }
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        if body.len() > self.max_frame {
            return Err(FrameError::TooLarge {
                max: self.max_frame,
            });
        }
        let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge {
            max: self.max_frame,
        })?;
        dst.reserve(HEADER + body.len());
        dst.put_u32(len);
        dst.extend_from_slice(&body);
        Ok(())
    }
}

/// Decodes one frame body: checks the version first, then parses the whole message.
pub fn decode<T: Message>(body: &[u8]) -> Result<T, FrameError> {
    #[derive(Deserialize)]
    struct Probe {
        v: u64,
    }
    let malformed = |e: serde_json::Error| FrameError::Malformed {
        protocol: T::PROTOCOL,
        reason: e.to_string(),
    };
    let probe: Probe = serde_json::from_slice(body).map_err(malformed)?;
    if probe.v != u64::from(T::VERSION) {
        return Err(FrameError::VersionMismatch {
            protocol: T::PROTOCOL,
            got: probe.v,
            expected: T::VERSION,
        });
    }
    if too_dense(body) {
        return Err(FrameError::Malformed {
            protocol: T::PROTOCOL,
            reason: format!(
                "a frame of {} bytes with more than one JSON value per {BYTES_PER_VALUE} bytes",
                body.len()
            ),
        });
    }
    serde_json::from_slice(body).map_err(malformed)
}

/// Frames up to this size are parsed whatever their shape.
const DENSE_CHECK_ABOVE: usize = 64 * 1024;
/// A larger frame may hold at most one JSON value per this many bytes.
const BYTES_PER_VALUE: usize = 4;

/// Whether `body`, a large frame, packs its JSON values densely. serde buffers a tagged message
/// whole before it knows its variant, at some 30 bytes a value, so `[0,0,0,…]` or `[[[[…` cost
/// 20 to 100 times their size; no message of ours has values that small in bulk (a piece list
/// is one 40-character string per piece). Counts the commas, colons and opening brackets
/// outside strings, in one pass.
fn too_dense(body: &[u8]) -> bool {
    if body.len() <= DENSE_CHECK_ABOVE {
        return false;
    }
    let limit = body.len() / BYTES_PER_VALUE;
    let (mut values, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b',' | b':' | b'[' | b'{' => {
                values += 1;
                if values > limit {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Encodes one message as a frame body.
pub fn encode<T: Message>(msg: &T) -> Result<Bytes, FrameError> {
    serde_json::to_vec(msg)
        .map(Bytes::from)
        .map_err(|e| FrameError::Malformed {
            protocol: T::PROTOCOL,
            reason: e.to_string(),
        })
}

/// One connection speaking a JSON protocol: owns the framing, hands out whole messages.
pub struct MessageStream<S> {
    framed: Framed<S, FrameCodec>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> MessageStream<S> {
    pub fn new(io: S, max_frame: usize) -> Self {
        Self {
            framed: Framed::new(io, FrameCodec::new(max_frame)),
        }
    }

    /// Changes the largest frame accepted and sent from now on (raised once the other end
    /// is authenticated).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.framed.codec_mut().set_max_frame(max_frame);
    }

    /// Reads the next message; `Ok(None)` when the peer closed cleanly between frames.
    pub async fn recv<T: Message>(&mut self) -> Result<Option<T>, FrameError> {
        match self.framed.next().await {
            None => Ok(None),
            Some(Ok(body)) => decode(&body).map(Some),
            Some(Err(e)) => Err(e),
        }
    }

    /// Like [`recv`](Self::recv), but gives up after `limit`.
    pub async fn recv_timeout<T: Message>(
        &mut self,
        limit: Duration,
    ) -> Result<Option<T>, FrameError> {
        tokio::time::timeout(limit, self.recv())
            .await
            .map_err(|_| FrameError::Timeout(limit))?
    }

    /// Writes one message and flushes it.
    pub async fn send<T: Message>(&mut self, msg: &T) -> Result<(), FrameError> {
        let body = encode(msg)?;
        self.framed.send(body).await
    }

    /// Queues one message without flushing it, so that several go out in one write (see
    /// [`flush`](Self::flush)); a full buffer is written out on the way.
    pub async fn feed<T: Message>(&mut self, msg: &T) -> Result<(), FrameError> {
        let body = encode(msg)?;
        self.framed.feed(body).await
    }

    /// Writes out the messages queued with [`feed`](Self::feed).
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        self.framed.flush().await
    }

    /// The underlying connection.
    pub fn get_ref(&self) -> &S {
        self.framed.get_ref()
    }

    /// Gives back the underlying connection.
    pub fn into_inner(self) -> S {
        self.framed.into_inner()
    }

    /// Gives back the underlying connection and the bytes already read from it past the last
    /// whole frame (a connection that stops speaking frames: the relay).
    pub fn into_parts(self) -> (S, BytesMut) {
        let parts = self.framed.into_parts();
        (parts.io, parts.read_buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        v: u32,
        text: String,
    }
    impl Message for Ping {
        const VERSION: u32 = 3;
        const PROTOCOL: &'static str = "test";
    }

    fn ping(text: &str) -> Ping {
        Ping {
            v: 3,
            text: text.into(),
        }
    }

    async fn feed(raw: Vec<u8>) -> Result<Option<Ping>, FrameError> {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        tx.write_all(&raw).await.unwrap();
        drop(tx);
        MessageStream::new(rx, 1024).recv::<Ping>().await
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut raw = (body.len() as u32).to_be_bytes().to_vec();
        raw.extend_from_slice(body);
        raw
    }

    #[tokio::test]
    async fn round_trip() {
        let (a, b) = tokio::io::duplex(4096);
        let mut a = MessageStream::new(a, 1024);
        let mut b = MessageStream::new(b, 1024);
        a.send(&ping("hello")).await.unwrap();
        assert_eq!(b.recv::<Ping>().await.unwrap(), Some(ping("hello")));
        drop(a);
        assert!(b.recv::<Ping>().await.unwrap().is_none(), "clean close");
    }

    #[tokio::test]
    async fn fed_messages_go_out_together_on_flush_in_order() {
        let (a, b) = tokio::io::duplex(4096);
        let mut a = MessageStream::new(a, 1024);
        let mut b = MessageStream::new(b, 1024);
        for text in ["one", "two", "three"] {
            a.feed(&ping(text)).await.unwrap();
        }
        a.flush().await.unwrap();
        drop(a);
        for text in ["one", "two", "three"] {
            assert_eq!(b.recv::<Ping>().await.unwrap(), Some(ping(text)));
        }
        assert!(b.recv::<Ping>().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn truncated_body_is_an_error() {
        let mut raw = frame(br#"{"v":3,"text":"hello"}"#);
        raw.truncate(raw.len() - 3);
        assert!(matches!(feed(raw).await, Err(FrameError::Truncated)));
    }

    #[tokio::test]
    async fn truncated_length_prefix_is_an_error() {
        assert!(matches!(feed(vec![0, 0]).await, Err(FrameError::Truncated)));
    }

    #[tokio::test]
    async fn oversized_frame_is_refused_before_reading_it() {
        let raw = u32::MAX.to_be_bytes().to_vec();
        assert!(matches!(
            feed(raw).await,
            Err(FrameError::TooLarge { max: 1024 })
        ));
    }

    #[tokio::test]
    async fn a_large_header_reserves_nothing_before_its_bytes_arrive() {
        let mut codec = FrameCodec::new(16 << 20);
        let mut buf = BytesMut::from(&(16u32 << 20).to_be_bytes()[..]);
        buf.extend_from_slice(b"{\"v\":3");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() < 4096, "capacity {}", buf.capacity());
    }

    #[tokio::test]
    async fn the_limit_can_be_raised_on_an_open_connection() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let mut a = MessageStream::new(a, 1 << 16);
        let mut b = MessageStream::new(b, 32);
        let big = ping(&"x".repeat(100));
        a.send(&big).await.unwrap();
        b.set_max_frame(1 << 16);
        assert_eq!(b.recv::<Ping>().await.unwrap(), Some(big));
    }

    #[test]
    fn a_large_frame_of_tiny_values_is_refused_before_it_is_parsed() {
        for dense in [
            format!(
                "{{\"v\":3,\"text\":\"x\",\"pad\":[{}0]}}",
                "0,".repeat(40_000)
            ),
            format!(
                "{{\"v\":3,\"text\":\"x\",\"pad\":{}{}}}",
                "[".repeat(70_000),
                "]".repeat(70_000)
            ),
        ] {
            match decode::<Ping>(dense.as_bytes()) {
                Err(FrameError::Malformed { reason, .. }) => {
                    assert!(reason.contains("one JSON value per 4 bytes"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        // Long strings (piece lists) and strings full of commas are not dense.
        let pieces: Vec<String> = (0..5000).map(|i| format!("{i:040x}")).collect();
        let body = serde_json::json!({"v": 3, "text": pieces.join(","), "pad": pieces});
        let body = serde_json::to_vec(&body).unwrap();
        assert!(body.len() > DENSE_CHECK_ABOVE);
        assert_eq!(decode::<Ping>(&body).unwrap().text.len(), 5000 * 41 - 1);
        let escaped = serde_json::json!({"v": 3, "text": "\\\",:[{".repeat(20_000)});
        let escaped = serde_json::to_vec(&escaped).unwrap();
        assert!(decode::<Ping>(&escaped).is_ok());
    }

    #[tokio::test]
    async fn oversized_send_is_refused() {
        let (a, _b) = tokio::io::duplex(4096);
        let mut a = MessageStream::new(a, 16);
        let err = a.send(&ping(&"x".repeat(100))).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { max: 16 }));
    }

    #[tokio::test]
    async fn wrong_version_is_named() {
        let raw = frame(br#"{"v":99,"text":"hello"}"#);
        match feed(raw).await {
            Err(FrameError::VersionMismatch { got, expected, .. }) => {
                assert_eq!((got, expected), (99, 3));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn garbage_is_malformed() {
        for body in [
            &b"\xff\xfe garbage"[..],
            b"[]",
            b"{}",
            b"{\"v\":\"3\"}",
            b"{\"v\":3}",
            b"GET / HTTP/1.1",
        ] {
            let result = feed(frame(body)).await;
            assert!(
                matches!(result, Err(FrameError::Malformed { .. })),
                "{body:?}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn http_request_is_refused_as_too_large() {
        // "GET " read as a big-endian length is far over any limit.
        let result = feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
        assert!(matches!(result, Err(FrameError::TooLarge { .. })));
    }

    #[tokio::test]
    async fn silence_times_out() {
        let (_a, b) = tokio::io::duplex(64);
        let mut b = MessageStream::new(b, 64);
        tokio::time::pause();
        let result = b.recv_timeout::<Ping>(Duration::from_secs(5)).await;
        assert!(matches!(result, Err(FrameError::Timeout(_))));
    }
}
