//! The failover rules, against fake trackers on loopback that answer as each test scripts.

use super::*;
use crate::testing::{FakeTracker, client_of};

/// What a fake tracker does with every request.
#[derive(Clone)]
enum Behaviour {
    Answer(Box<Result<TrackerReply, ErrorReply>>),
    /// Read the request and never answer (a frozen tracker).
    Silent,
}

impl FakeTracker {
    async fn behaving(behaviour: Behaviour) -> Self {
        FakeTracker::start(move |_| match &behaviour {
            Behaviour::Answer(result) => Some(result.as_ref().clone()),
            Behaviour::Silent => None,
        })
        .await
    }
}

fn pong(no: usize) -> Behaviour {
    Behaviour::Answer(Box::new(Ok(TrackerReply::Pong { tracker_no: no })))
}

fn unavailable() -> Behaviour {
    Behaviour::Answer(Box::new(Err(ErrorReply::unavailable("starting"))))
}

fn redirect_to(addr: SocketAddr) -> Behaviour {
    Behaviour::Answer(Box::new(Err(ErrorReply::not_primary(addr.to_string()))))
}

/// Short timings, so a test of the deadline ends quickly.
fn quick() -> Timing {
    Timing {
        connect: Duration::from_millis(500),
        attempt: Duration::from_millis(200),
        deadline: Duration::from_millis(1500),
        round_pause: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn the_first_tracker_answers_when_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let one = FakeTracker::behaving(pong(1)).await;
    let two = FakeTracker::behaving(pong(2)).await;
    let client = client_of(&[&one, &two], quick(), dir.path()).await;
    let reply = client.call(None, TrackerCall::Ping).await;
    assert_eq!(reply, Ok(TrackerReply::Pong { tracker_no: 1 }));
    assert!(two.requests().is_empty(), "the second tracker is not asked");
    assert_eq!(client.status().current, Some(one.addr));
}

#[tokio::test]
async fn an_unavailable_tracker_passes_the_same_request_to_the_next_which_is_then_preferred() {
    let dir = tempfile::tempdir().unwrap();
    let one = FakeTracker::behaving(unavailable()).await;
    let two = FakeTracker::behaving(pong(2)).await;
    let client = client_of(&[&one, &two], quick(), dir.path()).await;
    let reply = client.call(None, TrackerCall::Ping).await;
    assert_eq!(reply, Ok(TrackerReply::Pong { tracker_no: 2 }));
    let (first, second) = (one.requests(), two.requests());
    assert_eq!(first.len(), 1);
    assert_eq!(second.len(), 1);
    assert_eq!(
        first[0].id, second[0].id,
        "a retry carries the same request id"
    );
    // The tracker that answered is asked first from now on.
    client.call(None, TrackerCall::Ping).await.unwrap();
    assert_eq!(one.requests().len(), 1);
    assert_eq!(two.requests().len(), 2);
}

#[tokio::test]
async fn a_dead_tracker_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let dead = FakeTracker::dead().await;
    let two = FakeTracker::behaving(pong(2)).await;
    let client = client_of(&[&dead, &two], quick(), dir.path()).await;
    let reply = client.call(None, TrackerCall::Ping).await;
    assert_eq!(reply, Ok(TrackerReply::Pong { tracker_no: 2 }));
}

#[tokio::test]
async fn a_redirect_to_a_listed_tracker_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let two = FakeTracker::behaving(pong(2)).await;
    let one = FakeTracker::behaving(redirect_to(two.addr)).await;
    // Listed second, asked first: the redirect, not the file order, brings the request to it.
    let client = client_of(&[&one, &two], quick(), dir.path()).await;
    let reply = client.call(None, TrackerCall::Ping).await;
    assert_eq!(reply, Ok(TrackerReply::Pong { tracker_no: 2 }));
    assert_eq!(one.requests().len(), 1);
}

#[tokio::test]
async fn a_redirect_outside_the_list_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outsider = FakeTracker::behaving(pong(9)).await;
    let one = FakeTracker::behaving(redirect_to(outsider.addr)).await;
    let client = client_of(&[&one], quick(), dir.path()).await;
    let err = client.call(None, TrackerCall::Ping).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(
        outsider.requests().is_empty(),
        "nothing is sent to an unlisted tracker"
    );
    assert!(err.message.contains("standby"), "{err:?}");
}

#[tokio::test]
async fn silent_trackers_give_unavailable_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let one = FakeTracker::behaving(Behaviour::Silent).await;
    let two = FakeTracker::behaving(Behaviour::Silent).await;
    let client = client_of(&[&one, &two], quick(), dir.path()).await;
    let err = client.call(None, TrackerCall::Ping).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.message.contains("no answer within"), "{err:?}");
    assert!(!one.requests().is_empty() && !two.requests().is_empty());
    assert_eq!(client.status().current, None);
    assert!(client.status().last_error.is_some());
}

#[tokio::test]
async fn an_error_answer_is_final_and_not_retried_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let one = FakeTracker::behaving(Behaviour::Answer(Box::new(Err(ErrorReply::new(
        ErrorKind::AuthFailed,
        "wrong user id or password",
    )))))
    .await;
    let two = FakeTracker::behaving(pong(2)).await;
    let client = client_of(&[&one, &two], quick(), dir.path()).await;
    let err = client.call(None, TrackerCall::Whoami).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AuthFailed);
    assert!(two.requests().is_empty());
}
