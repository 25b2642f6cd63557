//! End to end: logging out makes a user unreachable (issue #15 item 6, SPEC.md §5.6). A
//! logged-out user kept its direct links and went on receiving, and the sender saw
//! "delivered". Now the links close at once, a friend who dials in is refused at the
//! hello, and a message sent meanwhile arrives only after the next login.

mod common;

use common::*;
use peerchat_client::Event;
use peerchat_proto::message::PeerFrame;
use peerchat_proto::wire::{self, ChannelKind, CloseReason};
use peerchat_proto::{Channel, LocalIdentity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_closes_every_link_and_refuses_friends_until_the_next_login() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _addr, mut alice, mut bob) = friends_pair(tmp.path(), (0, 1)).await;

    // A link is up: the first message is acknowledged.
    let first = alice.client.send_message("bob", "before").await.unwrap();
    alice
        .wait_for(
            20,
            "ack of the first message",
            |e| matches!(e, Event::MessageAcked { message_id, .. } if *message_id == first),
        )
        .await;
    bob.wait_for(
        10,
        "the first message",
        |e| matches!(e, Event::MessageReceived { text, .. } if text == "before"),
    )
    .await;

    bob.client.logout().await.unwrap();
    // The link closes on alice's side too (it was kept open before).
    alice
        .wait_for(
            10,
            "bob's link closed",
            |e| matches!(e, Event::PeerDisconnected { friend, .. } if friend == "bob"),
        )
        .await;
    bob.wait_for(10, "logged out", |e| matches!(e, Event::LoggedOut))
        .await;

    // Alice's real key dialling bob's listener directly is refused at the hello exchange.
    let me = LocalIdentity::new(peerchat_proto::test_keys::identity(0)).unwrap();
    let mut chan = Channel::connect(bob.client.peer_addr(), &me, ChannelKind::Peer)
        .await
        .unwrap();
    // Bob refuses before reading a hello (one sent now would be unread at his close, and
    // the reset could discard his Close frame).
    let answer = chan.recv::<wire::PeerMessage>().await.unwrap().unwrap();
    assert!(
        matches!(
            PeerFrame::try_from(answer),
            Ok(PeerFrame::Close {
                reason: CloseReason::NotAFriend,
                ..
            })
        ),
        "a logged-out client admits nobody"
    );
    drop(chan);

    // A message sent while bob is out is not delivered: bob sees it only after logging in
    // again, so alice's acknowledgement cannot come earlier either.
    let second = alice.client.send_message("bob", "while out").await.unwrap();
    bob.client.login("bob", PASSWORD).await.unwrap();
    let mut logged_in = false;
    bob.wait_for(30, "the second message after the login", |e| match e {
        Event::LoggedIn { .. } => {
            logged_in = true;
            false
        }
        Event::MessageReceived { text, .. } if text == "while out" => {
            assert!(logged_in, "received while logged out");
            true
        }
        _ => false,
    })
    .await;
    alice
        .wait_for(
            20,
            "ack of the second message",
            |e| matches!(e, Event::MessageAcked { message_id, .. } if *message_id == second),
        )
        .await;

    alice.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}
