//! One request and its answer on a control connection.
//!
//! The daemon answers every well-formed request with one `CtlResponse`, success or
//! `ErrorReply`. A daemon of another control protocol version either answers in its own
//! version or closes the connection; both are turned into a "restart the daemon" line instead
//! of a decoding error nobody can act on.

use crate::failure::{fail, io_reason};
use anyhow::Result;
use p2p_proto::control::{CONTROL_VERSION, CtlCommand, CtlReply, CtlRequest, CtlResponse};
use p2p_proto::limits::{CONTROL_REQUEST_TIMEOUT, MAX_CONTROL_FRAME};
use p2p_proto::{ErrorKind, FrameError, MessageStream};
use std::io;
use std::path::Path;
use tokio::net::UnixStream;

/// Sends `command` to the daemon on `stream` (connected to `socket`) and returns its reply.
/// The daemon's own error becomes an `ErrorReply` error, its message being the reason shown.
pub async fn call(stream: UnixStream, socket: &Path, command: CtlCommand) -> Result<CtlReply> {
    let mut conn = MessageStream::new(stream, MAX_CONTROL_FRAME);
    conn.send(&CtlRequest::new(command))
        .await
        .map_err(|err| frame_error(socket, err))?;
    match conn
        .recv_timeout::<CtlResponse>(CONTROL_REQUEST_TIMEOUT)
        .await
    {
        Ok(Some(response)) => response.result.map_err(anyhow::Error::new),
        Ok(None) => Err(closed_without_answer(socket)),
        Err(err) => Err(frame_error(socket, err)),
    }
}

/// Says what went wrong on the connection in terms of what the user can do about it.
fn frame_error(socket: &Path, err: FrameError) -> anyhow::Error {
    let at = socket.display();
    match err {
        FrameError::VersionMismatch { got, .. } => fail(
            ErrorKind::Protocol,
            format!(
                "p2pd at {at} speaks control protocol v{got}; restart the daemon \
                 (p2pctl was built for control protocol v{CONTROL_VERSION})"
            ),
        ),
        FrameError::Malformed { reason, .. } => fail(
            ErrorKind::Protocol,
            format!(
                "p2pd at {at} sent a reply p2pctl does not understand ({reason}); restart the \
                 daemon (p2pctl was built for control protocol v{CONTROL_VERSION})"
            ),
        ),
        FrameError::Truncated => closed_without_answer(socket),
        FrameError::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            closed_without_answer(socket)
        }
        FrameError::TooLarge { max } => fail(
            ErrorKind::Protocol,
            format!("p2pd at {at} sent a reply larger than the {max}-byte limit"),
        ),
        FrameError::Timeout(limit) => fail(
            ErrorKind::Unavailable,
            format!("p2pd at {at} did not answer within {}s", limit.as_secs()),
        ),
        FrameError::Io(io) => fail(
            ErrorKind::Unavailable,
            format!("cannot talk to p2pd at {at}: {}", io_reason(&io)),
        ),
    }
}

/// A current daemon always answers before closing, so a silent close is most likely a daemon
/// that refused our version without being able to say so in it.
fn closed_without_answer(socket: &Path) -> anyhow::Error {
    fail(
        ErrorKind::Protocol,
        format!(
            "p2pd at {} closed the connection without answering; it may speak another protocol \
             version: restart the daemon (p2pctl was built for control protocol v{CONTROL_VERSION})",
            socket.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::describe;
    use p2p_proto::ErrorReply;
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixListener;

    /// A fake daemon that reads one frame and answers with `answer` (raw frame bytes).
    async fn exchange(answer: Vec<u8>) -> Result<CtlReply> {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("p2pd.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = MessageStream::new(stream, MAX_CONTROL_FRAME);
            let request = conn.recv::<CtlRequest>().await.unwrap().unwrap();
            assert_eq!(
                request.cmd,
                CtlCommand::ListGroups {
                    after: None,
                    limit: None
                }
            );
            let mut stream = conn.into_inner();
            stream.write_all(&answer).await.unwrap();
        });
        let stream = UnixStream::connect(&socket).await.unwrap();
        let result = call(
            stream,
            &socket,
            CtlCommand::ListGroups {
                after: None,
                limit: None,
            },
        )
        .await;
        server.await.unwrap();
        result
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut raw = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        raw.extend_from_slice(body);
        raw
    }

    #[tokio::test]
    async fn reply_is_returned() {
        let body = serde_json::to_vec(&CtlResponse::new(Ok(CtlReply::Groups {
            groups: vec![],
            more: false,
        })))
        .unwrap();
        let reply = exchange(frame(&body)).await.unwrap();
        assert_eq!(
            reply,
            CtlReply::Groups {
                groups: vec![],
                more: false,
            }
        );
    }

    #[tokio::test]
    async fn daemon_error_is_the_reason() {
        let body = serde_json::to_vec(&CtlResponse::new(Err(ErrorReply::not_logged_in()))).unwrap();
        let err = exchange(frame(&body)).await.unwrap_err();
        assert_eq!(describe(&err), ErrorReply::not_logged_in());
    }

    #[tokio::test]
    async fn other_version_says_restart() {
        // A daemon of the release before this one.
        let err = exchange(frame(br#"{"v":1,"result":{"Ok":{}}}"#))
            .await
            .unwrap_err();
        let reply = describe(&err);
        assert_eq!(reply.kind, ErrorKind::Protocol);
        assert!(
            reply.message.contains("speaks control protocol v1"),
            "{reply:?}"
        );
        assert!(reply.message.contains("restart the daemon"), "{reply:?}");
    }

    #[tokio::test]
    async fn silent_close_says_restart() {
        let err = exchange(Vec::new()).await.unwrap_err();
        assert!(format!("{err:#}").contains("restart the daemon"), "{err:#}");
        let err = exchange(vec![0, 0, 0, 10, b'{']).await.unwrap_err();
        assert!(format!("{err:#}").contains("restart the daemon"), "{err:#}");
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let err = exchange(frame(b"not json")).await.unwrap_err();
        assert_eq!(describe(&err).kind, ErrorKind::Protocol);
    }
}
