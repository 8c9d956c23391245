//! The peer protocol: a downloader connects to a seeder and asks for pieces of one file.
//!
//! Frame: `u32` big-endian length of what follows, then a `u8` type, then the payload.
//!
//! | type | name      | payload                                                     |
//! |------|-----------|-------------------------------------------------------------|
//! | 1    | HELLO     | JSON [`Hello`]: version, file SHA-1, grant (downloader → seeder, first frame) |
//! | 2    | WELCOME   | bitfield of the pieces the seeder holds (seeder → downloader) |
//! | 3    | ERROR     | UTF-8 reason; the sender closes the connection               |
//! | 4    | HAVE      | `u32` piece the seeder just verified                        |
//! | 5    | REQUEST   | `u32` piece                                                  |
//! | 6    | CANCEL    | `u32` piece                                                  |
//! | 7    | PIECE     | `u32` piece, then the piece's raw bytes                      |
//! | 8    | REJECT    | `u32` piece the seeder cannot serve now                      |
//! | 9    | KEEPALIVE | empty                                                        |
//! | 10   | GRANT     | JSON [`Grant`]: a renewed grant (downloader → seeder)        |
//!
//! It runs inside TLS: the seeder serves only a grant naming the key the downloader proved it
//! holds, and checks the grant's expiry on every REQUEST; the downloader accepts only the key
//! the tracker listed for the seeder. Piece data is never JSON. Frames over
//! [`MAX_PEER_FRAME`] are refused before they are read.

use crate::files::PIECE_SIZE;
use crate::grant::Grant;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder};

/// Version of the peer protocol.
pub const PEER_VERSION: u32 = 2;

/// Largest frame: a whole piece plus its header.
pub const MAX_PEER_FRAME: usize = PIECE_SIZE as usize + 16;

/// Largest HELLO or ERROR payload.
pub const MAX_CONTROL_PAYLOAD: usize = 64 * 1024;

/// The first frame of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub v: u32,
    /// SHA-1 of the whole file wanted, hex.
    pub file: String,
    pub grant: Grant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFrame {
    Hello(Hello),
    Welcome(Bytes),
    Error(String),
    Have(u32),
    Request(u32),
    Cancel(u32),
    Piece { index: u32, data: Bytes },
    Reject(u32),
    KeepAlive,
    Grant(Grant),
}

impl PeerFrame {
    /// The frame's type as the table above names it, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            PeerFrame::Hello(_) => "HELLO",
            PeerFrame::Welcome(_) => "WELCOME",
            PeerFrame::Error(_) => "ERROR",
            PeerFrame::Have(_) => "HAVE",
            PeerFrame::Request(_) => "REQUEST",
            PeerFrame::Cancel(_) => "CANCEL",
            PeerFrame::Piece { .. } => "PIECE",
            PeerFrame::Reject(_) => "REJECT",
            PeerFrame::KeepAlive => "KEEPALIVE",
            PeerFrame::Grant(_) => "GRANT",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PeerWireError {
    #[error("peer frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("malformed peer frame: {0}")]
    Malformed(String),
    #[error("peer protocol version mismatch: got {got}, expected {PEER_VERSION}")]
    Version { got: u32 },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl PeerWireError {
    /// True when the peer broke the protocol (as opposed to the connection breaking).
    pub fn is_violation(&self) -> bool {
        matches!(
            self,
            PeerWireError::TooLarge(_)
                | PeerWireError::Malformed(_)
                | PeerWireError::Version { .. }
        )
    }
}

/// Where the bytes of a piece received in a PIECE frame start: at a multiple of this in
/// memory (unless the whole frame arrived in one read with the frames before it), so that the
/// receiver can hand them to the disk as they are.
pub const PIECE_DATA_ALIGN: usize = 4096;

/// Length, type and index of a PIECE frame, before the piece's bytes.
const PIECE_HEADER: usize = 4 + 1 + 4;

/// Room kept after a PIECE frame in its buffer, for the start of the frames that follow it.
const PIECE_SLACK: usize = 16 * 1024;

/// Buffers of earlier PIECE frames a codec keeps for the next ones: as many as a download
/// verifies and writes at once.
const MAX_SPARES: usize = 8;

/// Encodes and decodes [`PeerFrame`]s.
///
/// Only a PIECE frame's buffer is reserved whole once its header is seen (512 KiB arrive in a
/// moment, and growing the buffer in steps would copy them again); any other frame grows the
/// buffer only with the bytes that arrive. The buffer a piece arrives in is one an earlier
/// piece left, once that piece has been dropped (a fresh 512 KiB allocation per piece costs
/// page faults), and the piece's bytes start at [`PIECE_DATA_ALIGN`] in it. A serving
/// connection, which never receives a piece, takes frames of at most a control frame's size
/// ([`PeerCodec::serving`]).
#[derive(Debug)]
pub struct PeerCodec {
    max_frame: usize,
    /// Buffers that held earlier PIECE frames; one is taken again once nothing else shares it.
    spares: Vec<BytesMut>,
    /// Where the buffer made for the last PIECE frame lies in memory: the read buffer is kept
    /// as a spare only while it is still that one (not one the reader grew afresh).
    piece_buffer: std::ops::Range<usize>,
}

impl Default for PeerCodec {
    /// The codec of a downloading connection: frames up to a whole piece.
    fn default() -> Self {
        Self {
            max_frame: MAX_PEER_FRAME,
            spares: Vec::new(),
            piece_buffer: 0..0,
        }
    }
}

impl PeerCodec {
    /// The codec of a serving connection: no frame it may receive is larger than a control
    /// frame.
    pub fn serving() -> Self {
        Self {
            max_frame: MAX_CONTROL_PAYLOAD + 1,
            ..Self::default()
        }
    }

    /// Gives the PIECE frame of `frame_len` bytes whose start `src` holds (and nothing else)
    /// a buffer with room for all of it, where the piece's bytes will start aligned: a spare
    /// one if one is free, else a new one. The buffer `src` was in is kept as a spare.
    fn make_room_for_piece(&mut self, src: &mut BytesMut, frame_len: usize) {
        let data_at = src.as_ptr() as usize + PIECE_HEADER;
        if src.capacity() >= frame_len && data_at.is_multiple_of(PIECE_DATA_ALIGN) {
            return;
        }
        let need = PIECE_DATA_ALIGN + frame_len + PIECE_SLACK;
        let free = self.spares.iter_mut().position(|b| {
            b.clear();
            b.try_reclaim(need)
        });
        let mut room = match free {
            Some(i) => self.spares.swap_remove(i),
            None => BytesMut::with_capacity(need),
        };
        let pad = (PIECE_DATA_ALIGN - (room.as_ptr() as usize + PIECE_HEADER) % PIECE_DATA_ALIGN)
            % PIECE_DATA_ALIGN;
        room.put_bytes(0, pad);
        room.advance(pad);
        room.extend_from_slice(src);
        let start = room.as_ptr() as usize;
        let was_piece_buffer = self.piece_buffer.contains(&(src.as_ptr() as usize));
        self.piece_buffer = start..start + room.capacity();
        let old = std::mem::replace(src, room);
        if was_piece_buffer && self.spares.len() < MAX_SPARES {
            self.spares.push(old);
        }
    }
}

const T_HELLO: u8 = 1;
const T_WELCOME: u8 = 2;
const T_ERROR: u8 = 3;
const T_HAVE: u8 = 4;
const T_REQUEST: u8 = 5;
const T_CANCEL: u8 = 6;
const T_PIECE: u8 = 7;
const T_REJECT: u8 = 8;
const T_KEEPALIVE: u8 = 9;
const T_GRANT: u8 = 10;

fn index(payload: &Bytes) -> Result<u32, PeerWireError> {
    let raw: [u8; 4] = payload
        .as_ref()
        .try_into()
        .map_err(|_| PeerWireError::Malformed("piece index must be 4 bytes".into()))?;
    Ok(u32::from_be_bytes(raw))
}

impl Decoder for PeerCodec {
    type Item = PeerFrame;
    type Error = PeerWireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<PeerFrame>, PeerWireError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max_frame {
            return Err(PeerWireError::TooLarge(len));
        }
        if len == 0 {
            return Err(PeerWireError::Malformed("empty frame".into()));
        }
        if src.len() < 4 + len {
            if src.get(4) == Some(&T_PIECE) {
                self.make_room_for_piece(src, 4 + len);
            }
            return Ok(None);
        }
        src.advance(4);
        let kind = src.get_u8();
        let payload = src.split_to(len - 1).freeze();
        let control_sized = |p: &Bytes| {
            if p.len() > MAX_CONTROL_PAYLOAD {
                Err(PeerWireError::TooLarge(p.len()))
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            T_HELLO => {
                control_sized(&payload)?;
                #[derive(Deserialize)]
                struct Probe {
                    v: u32,
                }
                let probe: Probe = serde_json::from_slice(&payload)
                    .map_err(|e| PeerWireError::Malformed(e.to_string()))?;
                if probe.v != PEER_VERSION {
                    return Err(PeerWireError::Version { got: probe.v });
                }
                PeerFrame::Hello(
                    serde_json::from_slice(&payload)
                        .map_err(|e| PeerWireError::Malformed(e.to_string()))?,
                )
            }
            T_WELCOME => PeerFrame::Welcome(payload),
            T_ERROR => {
                control_sized(&payload)?;
                PeerFrame::Error(String::from_utf8_lossy(&payload).into_owned())
            }
            T_HAVE => PeerFrame::Have(index(&payload)?),
            T_REQUEST => PeerFrame::Request(index(&payload)?),
            T_CANCEL => PeerFrame::Cancel(index(&payload)?),
            T_REJECT => PeerFrame::Reject(index(&payload)?),
            T_PIECE => {
                if payload.len() < 4 {
                    return Err(PeerWireError::Malformed("piece frame without index".into()));
                }
                let mut payload = payload;
                let index = payload.get_u32();
                PeerFrame::Piece {
                    index,
                    data: payload,
                }
            }
            T_KEEPALIVE if payload.is_empty() => PeerFrame::KeepAlive,
            T_GRANT => {
                control_sized(&payload)?;
                PeerFrame::Grant(
                    serde_json::from_slice(&payload)
                        .map_err(|e| PeerWireError::Malformed(e.to_string()))?,
                )
            }
            other => {
                return Err(PeerWireError::Malformed(format!(
                    "unknown frame type {other}"
                )));
            }
        };
        Ok(Some(frame))
    }

    /// At the end of the stream, bytes of an unfinished frame are [`PeerWireError::Truncated`].
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<PeerFrame>, PeerWireError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(PeerWireError::Truncated),
        }
    }
}

impl Encoder<PeerFrame> for PeerCodec {
    type Error = PeerWireError;

    fn encode(&mut self, frame: PeerFrame, dst: &mut BytesMut) -> Result<(), PeerWireError> {
        let (kind, head, body): (u8, Option<u32>, Bytes) = match frame {
            PeerFrame::Hello(hello) => (
                T_HELLO,
                None,
                serde_json::to_vec(&hello)
                    .map_err(|e| PeerWireError::Malformed(e.to_string()))?
                    .into(),
            ),
            PeerFrame::Welcome(bits) => (T_WELCOME, None, bits),
            PeerFrame::Error(reason) => {
                let mut text = reason.into_bytes();
                text.truncate(MAX_CONTROL_PAYLOAD);
                (T_ERROR, None, text.into())
            }
            PeerFrame::Have(i) => (T_HAVE, Some(i), Bytes::new()),
            PeerFrame::Request(i) => (T_REQUEST, Some(i), Bytes::new()),
            PeerFrame::Cancel(i) => (T_CANCEL, Some(i), Bytes::new()),
            PeerFrame::Reject(i) => (T_REJECT, Some(i), Bytes::new()),
            PeerFrame::Piece { index, data } => (T_PIECE, Some(index), data),
            PeerFrame::KeepAlive => (T_KEEPALIVE, None, Bytes::new()),
            PeerFrame::Grant(grant) => (
                T_GRANT,
                None,
                serde_json::to_vec(&grant)
                    .map_err(|e| PeerWireError::Malformed(e.to_string()))?
                    .into(),
            ),
        };
        let len = 1 + head.map_or(0, |_| 4) + body.len();
        if len > MAX_PEER_FRAME {
            return Err(PeerWireError::TooLarge(len));
        }
        dst.reserve(4 + len);
        dst.put_u32(len as u32);
        dst.put_u8(kind);
        if let Some(i) = head {
            dst.put_u32(i);
        }
        dst.extend_from_slice(&body);
        Ok(())
    }
}

/// Sends a PIECE frame without copying the piece into the codec's write buffer: the buffer is
/// flushed, then header and data go to the socket in one vectored write.
pub async fn send_piece<S>(
    framed: &mut tokio_util::codec::Framed<S, PeerCodec>,
    index: u32,
    data: Bytes,
) -> Result<(), PeerWireError>
where
    S: tokio::io::AsyncWrite + tokio::io::AsyncRead + Unpin,
{
    use futures_util::SinkExt;
    use tokio::io::AsyncWriteExt;
    let len = 1 + 4 + data.len();
    if len > MAX_PEER_FRAME {
        return Err(PeerWireError::TooLarge(len));
    }
    SinkExt::<PeerFrame>::flush(framed).await?;
    let mut header = BytesMut::with_capacity(9);
    header.put_u32(len as u32);
    header.put_u8(T_PIECE);
    header.put_u32(index);
    let mut frame = header.freeze().chain(data);
    framed.get_mut().write_all_buf(&mut frame).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: PeerFrame) {
        let mut buf = BytesMut::new();
        PeerCodec::default()
            .encode(frame.clone(), &mut buf)
            .unwrap();
        let decoded = PeerCodec::default().decode(&mut buf).unwrap();
        assert_eq!(decoded, Some(frame));
        assert!(buf.is_empty());
    }

    #[test]
    fn frames_round_trip() {
        round_trip(PeerFrame::Have(7));
        round_trip(PeerFrame::Request(0));
        round_trip(PeerFrame::Cancel(3));
        round_trip(PeerFrame::Reject(3));
        round_trip(PeerFrame::KeepAlive);
        round_trip(PeerFrame::Welcome(Bytes::from_static(&[0xff, 0x80])));
        round_trip(PeerFrame::Error("no".into()));
        round_trip(PeerFrame::Piece {
            index: 9,
            data: Bytes::from(vec![1u8; PIECE_SIZE as usize]),
        });
    }

    #[tokio::test]
    async fn send_piece_is_read_back_as_a_piece_frame() {
        use futures_util::StreamExt;
        let (a, b) = tokio::io::duplex(4 << 20);
        let mut tx = tokio_util::codec::Framed::new(a, PeerCodec::default());
        let mut rx = tokio_util::codec::Framed::new(b, PeerCodec::default());
        let data = Bytes::from(vec![7u8; 1000]);
        send_piece(&mut tx, 3, data.clone()).await.unwrap();
        let got = rx.next().await.unwrap().unwrap();
        assert_eq!(got, PeerFrame::Piece { index: 3, data });
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut buf = BytesMut::new();
        PeerCodec::default()
            .encode(PeerFrame::Have(7), &mut buf)
            .unwrap();
        let mut half = buf.split_to(5);
        assert_eq!(PeerCodec::default().decode(&mut half).unwrap(), None);
    }

    #[test]
    fn hostile_frames_are_refused() {
        let mut huge = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert!(matches!(
            PeerCodec::default().decode(&mut huge),
            Err(PeerWireError::TooLarge(_))
        ));
        let mut unknown = BytesMut::from(&[0, 0, 0, 1, 42][..]);
        assert!(PeerCodec::default().decode(&mut unknown).is_err());
        let mut short_index = BytesMut::from(&[0, 0, 0, 3, T_HAVE, 0, 1][..]);
        assert!(PeerCodec::default().decode(&mut short_index).is_err());
        let mut bad_hello = BytesMut::from(&[0, 0, 0, 3, T_HELLO, b'{', b'}'][..]);
        assert!(PeerCodec::default().decode(&mut bad_hello).is_err());
        let hello = br#"{"v":99,"file":"x","grant":null}"#;
        let mut wrong_version = BytesMut::new();
        wrong_version.put_u32(hello.len() as u32 + 1);
        wrong_version.put_u8(T_HELLO);
        wrong_version.extend_from_slice(hello);
        assert!(matches!(
            PeerCodec::default().decode(&mut wrong_version),
            Err(PeerWireError::Version { got: 99 })
        ));
    }

    #[test]
    fn only_a_piece_header_reserves_its_frame() {
        let mut codec = PeerCodec::default();
        let mut piece = BytesMut::from(&(400_000u32).to_be_bytes()[..]);
        piece.extend_from_slice(&[T_PIECE, 0, 0]);
        assert_eq!(codec.decode(&mut piece).unwrap(), None);
        assert!(piece.capacity() >= 400_004);
        let mut other = BytesMut::from(&(60_000u32).to_be_bytes()[..]);
        other.extend_from_slice(&[T_HELLO, b'{']);
        assert_eq!(codec.decode(&mut other).unwrap(), None);
        assert!(other.capacity() < 4096, "capacity {}", other.capacity());
    }

    /// The first `split` bytes of a PIECE frame of piece `index` filled with `fill`, and the rest.
    fn piece_frame(index: u32, fill: u8, split: usize) -> (Vec<u8>, Vec<u8>) {
        let mut raw = BytesMut::new();
        PeerCodec::default()
            .encode(
                PeerFrame::Piece {
                    index,
                    data: Bytes::from(vec![fill; PIECE_SIZE as usize]),
                },
                &mut raw,
            )
            .unwrap();
        let rest = raw.split_off(split);
        (raw.to_vec(), rest.to_vec())
    }

    /// Feeds a PIECE frame in two parts, as reads deliver it, and returns its bytes.
    fn receive_piece(codec: &mut PeerCodec, buf: &mut BytesMut, index: u32, fill: u8) -> Bytes {
        let (head, rest) = piece_frame(index, fill, 3000);
        buf.extend_from_slice(&head);
        assert_eq!(codec.decode(buf).unwrap(), None);
        buf.extend_from_slice(&rest);
        match codec.decode(buf).unwrap() {
            Some(PeerFrame::Piece { index: got, data }) => {
                assert_eq!(got, index);
                data
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn piece_bytes_land_aligned_in_a_buffer_used_again_once_the_piece_is_dropped() {
        let mut codec = PeerCodec::default();
        let mut buf = BytesMut::new();
        let first = receive_piece(&mut codec, &mut buf, 1, 0xa1);
        let at = first.as_ptr() as usize;
        assert!(at.is_multiple_of(PIECE_DATA_ALIGN));
        // Held: the next piece gets another buffer, and the first keeps its bytes.
        let second = receive_piece(&mut codec, &mut buf, 2, 0xb2);
        assert!((second.as_ptr() as usize).is_multiple_of(PIECE_DATA_ALIGN));
        assert_ne!(second.as_ptr() as usize, at);
        assert!(first.iter().all(|&b| b == 0xa1));
        assert!(second.iter().all(|&b| b == 0xb2));
        // Dropped: its buffer takes a later piece.
        drop(first);
        let third = receive_piece(&mut codec, &mut buf, 3, 0xc3);
        assert_eq!(third.as_ptr() as usize, at);
        assert!(third.iter().all(|&b| b == 0xc3));
        assert!(second.iter().all(|&b| b == 0xb2));
        assert!(codec.spares.len() <= MAX_SPARES);
    }

    #[test]
    fn a_serving_connection_takes_no_piece_sized_frame() {
        let mut codec = PeerCodec::serving();
        let mut piece = BytesMut::from(&(400_000u32).to_be_bytes()[..]);
        piece.extend_from_slice(&[T_PIECE]);
        assert!(matches!(
            codec.decode(&mut piece),
            Err(PeerWireError::TooLarge(400_000))
        ));
    }
}
