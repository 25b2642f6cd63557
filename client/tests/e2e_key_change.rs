//! End to end, real server and real client cores on loopback: a friend's identity key that
//! changes (a password login from another device, SPEC.md §5.3 "New device") is a decision
//! for the user, never an event the client acts on by itself (SPEC.md §12.4). Whether the
//! change is learned from the LoginOk snapshot (the user was offline) or from the
//! FriendKeyChanged push (online), messages to the friend are held, the new key gets no
//! link, and only accepting the presented fingerprint releases them, exactly once.

mod common;

use common::*;
use peerchat_client::{ClientError, Event, KeyDecision};

fn fingerprint(n: usize) -> String {
    peerchat_proto::test_keys::identity(n)
        .public()
        .fingerprint()
        .to_string()
}

/// Waits until `c` reports bob's key change and checks both fingerprints.
async fn expect_key_change(c: &mut TestClient, pinned: &str, presented: &str) {
    let e = c
        .wait_for(
            20,
            "friend_key_changed",
            |e| matches!(e, Event::FriendKeyChanged { friend, .. } if friend == "bob"),
        )
        .await;
    assert_eq!(
        e,
        Event::FriendKeyChanged {
            friend: "bob".into(),
            pinned: pinned.into(),
            presented: presented.into(),
        }
    );
}

/// The new device tries to reach alice; alice refuses the new key (a fact to wait for, so
/// that "nothing was delivered" is checked after a real chance to deliver it).
async fn new_key_is_refused(alice: &mut TestClient, thief: &mut TestClient, presented: &str) {
    thief
        .client
        .send_message("alice", "hello from my new phone")
        .await
        .unwrap();
    let fp = presented.to_owned();
    alice
        .wait_for(
            20,
            "the new key refused",
            |e| matches!(e, Event::PeerRefused { fingerprint, .. } if *fingerprint == fp),
        )
        .await;
    assert!(!alice.client.is_connected("bob").await.unwrap());
    let got = thief.client.history("alice", 10).await.unwrap();
    assert!(
        got.iter().all(|m| m.direction != "in"),
        "the new key received {got:?}"
    );
}

/// Accepting releases the held message: delivered once, in order, to the new key.
async fn accept_and_deliver(alice: &mut TestClient, thief: &mut TestClient, presented: &str) {
    alice
        .client
        .accept_friend_key("bob", presented)
        .await
        .unwrap();
    let fp = presented.to_owned();
    alice
        .wait_for(20, "trusted", |e| {
            matches!(e, Event::FriendKeyTrusted { friend, fingerprint, how: KeyDecision::Accepted } if friend == "bob" && *fingerprint == fp)
        })
        .await;
    thief
        .wait_for(
            30,
            "the held message",
            |e| matches!(e, Event::MessageReceived { text, .. } if text == "held for bob"),
        )
        .await;
    alice
        .wait_for(20, "ack of the held message", |e| {
            matches!(e, Event::MessageAcked { .. })
        })
        .await;
    chat(alice, thief, "after the decision").await;
    let incoming: Vec<String> = thief
        .client
        .history("alice", 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.direction == "in")
        .map(|m| m.text)
        .collect();
    assert_eq!(incoming, vec!["held for bob", "after the decision"]);
    // A second accept finds nothing pending.
    assert!(matches!(
        alice.client.accept_friend_key("bob", presented).await,
        Err(ClientError::KeyChange(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_change_learned_at_login_holds_messages_until_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, mut alice, mut bob) = friends_pair(tmp.path(), (0, 1)).await;
    chat(&mut alice, &mut bob, "before").await;
    let (pinned, presented) = (fingerprint(1), fingerprint(9));

    // Alice goes offline; someone with bob's password logs in from a new identity key.
    alice.client.shutdown().await;
    bob.client.shutdown().await;
    let mut thief = client(&addr, &tmp.path().join("thief"), "bob", 9).await;
    thief.client.login("bob", PASSWORD).await.unwrap();

    // Alice learns it only from her LoginOk snapshot.
    let mut alice = client(&addr, tmp.path(), "alice", 0).await;
    expect_key_change(&mut alice, &pinned, &presented).await;
    let bob_view = alice.client.friends().await.unwrap().friends.remove(0);
    assert_eq!(bob_view.fingerprint, pinned);
    assert_eq!(
        bob_view.presented_fingerprint.as_deref(),
        Some(presented.as_str())
    );
    alice
        .client
        .send_message("bob", "held for bob")
        .await
        .unwrap();

    // The pending state survives a restart and is shown again.
    let mut alice = alice.restart(&addr, tmp.path(), 0).await;
    expect_key_change(&mut alice, &pinned, &presented).await;
    alice
        .wait_for(10, "logged in", |e| matches!(e, Event::LoggedIn { .. }))
        .await;
    new_key_is_refused(&mut alice, &mut thief, &presented).await;

    // Naming the old (pinned) fingerprint accepts nothing.
    assert!(matches!(
        alice.client.accept_friend_key("bob", &pinned).await,
        Err(ClientError::KeyChange(_))
    ));
    accept_and_deliver(&mut alice, &mut thief, &presented).await;

    alice.client.shutdown().await;
    thief.client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_change_pushed_while_online_closes_the_link_and_holds_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, mut alice, mut bob) = friends_pair(tmp.path(), (2, 3)).await;
    chat(&mut alice, &mut bob, "before").await;
    assert!(alice.client.is_connected("bob").await.unwrap());
    let (pinned, presented) = (fingerprint(3), fingerprint(10));

    // While alice is online, bob's password is used from another identity key.
    let mut thief = client(&addr, &tmp.path().join("thief"), "bob", 10).await;
    thief.client.login("bob", PASSWORD).await.unwrap();
    expect_key_change(&mut alice, &pinned, &presented).await;
    // The link authenticated with the old key is gone (§7.2), and no new one is made.
    alice
        .wait_for(
            20,
            "old link closed",
            |e| matches!(e, Event::PeerDisconnected { friend, .. } if friend == "bob"),
        )
        .await;
    alice
        .client
        .send_message("bob", "held for bob")
        .await
        .unwrap();
    new_key_is_refused(&mut alice, &mut thief, &presented).await;
    // A duplicate of the same change (here: the FriendOnline that follows) is not a new
    // decision: accepting the fingerprint shown once is enough.
    accept_and_deliver(&mut alice, &mut thief, &presented).await;

    alice.client.shutdown().await;
    bob.client.shutdown().await;
    thief.client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_changes_back_to_the_pinned_one_releases_held_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, mut alice, mut bob) = friends_pair(tmp.path(), (4, 5)).await;
    chat(&mut alice, &mut bob, "before").await;

    let thief = client(&addr, &tmp.path().join("thief"), "bob", 11).await;
    thief.client.login("bob", PASSWORD).await.unwrap();
    expect_key_change(&mut alice, &fingerprint(5), &fingerprint(11)).await;
    alice
        .client
        .send_message("bob", "held for bob")
        .await
        .unwrap();

    // The owner logs in with the password from his own device: the key is the pinned one
    // again, the change is over without a decision, and the held message goes to him.
    bob.client.login("bob", PASSWORD).await.unwrap();
    let pinned = fingerprint(5);
    alice
        .wait_for(20, "reverted", |e| {
            matches!(e, Event::FriendKeyTrusted { friend, fingerprint, how: KeyDecision::Reverted } if friend == "bob" && *fingerprint == pinned)
        })
        .await;
    bob.wait_for(
        30,
        "the held message",
        |e| matches!(e, Event::MessageReceived { text, .. } if text == "held for bob"),
    )
    .await;
    assert!(alice
        .client
        .friends()
        .await
        .unwrap()
        .friends
        .iter()
        .all(|f| f.presented_fingerprint.is_none()));

    alice.client.shutdown().await;
    bob.client.shutdown().await;
    thief.client.shutdown().await;
    server.shutdown().await;
}
