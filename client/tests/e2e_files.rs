//! End to end: file transfer between real client cores — a 1 GiB file byte-identical,
//! hostile names neutralised, and a transfer resumed after the receiver restarts.

mod common;

use common::*;
use peerchat_client::{Direction, Event};
use peerchat_proto::wire::FileCancelReason;

const GIB: u64 = 1 << 30;

async fn pair(
    tmp: &std::path::Path,
    keys: (usize, usize),
) -> (
    peerchat_server::RunningServer,
    String,
    TestClient,
    TestClient,
) {
    let server = start_server(&tmp.join("server")).await;
    let addr = server.local_addr.to_string();
    let mut alice = client(&addr, tmp, "alice", keys.0).await;
    let mut bob = client(&addr, tmp, "bob", keys.1).await;
    register_login(&mut alice).await;
    register_login(&mut bob).await;
    befriend(&mut alice, &mut bob).await;
    (server, addr, alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_file_arrives_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _addr, mut alice, mut bob) = pair(tmp.path(), (9, 10)).await;
    let src = tmp.path().join("big.bin");
    let want = patterned_file(&src, GIB);

    let id = alice.client.send_file("bob", &src).await.unwrap();
    let done = bob
        .wait_for(300, "transfer complete", |e| matches!(e, Event::TransferComplete { transfer_id, direction: Direction::Incoming, .. } if *transfer_id == id))
        .await;
    let Event::TransferComplete { path, size, .. } = done else {
        unreachable!()
    };
    assert_eq!(size, GIB);
    let expected = bob.profile.join("downloads").join("alice").join("big.bin");
    assert_eq!(std::path::PathBuf::from(&path), expected);
    assert_eq!(sha256_file(&expected), want);
    assert!(!bob.profile.join("downloads/alice/big.bin.part").exists());
    alice
        .wait_for(30, "sender complete", |e| {
            matches!(
                e,
                Event::TransferComplete {
                    direction: Direction::Outgoing,
                    ..
                }
            )
        })
        .await;

    // The same file again never overwrites the first copy.
    let id2 = alice.client.send_file("bob", &src).await.unwrap();
    let again = bob
        .wait_for(
            300,
            "second copy",
            |e| matches!(e, Event::TransferComplete { transfer_id, .. } if *transfer_id == id2),
        )
        .await;
    let Event::TransferComplete { path, .. } = again else {
        unreachable!()
    };
    assert!(path.ends_with("big (1).bin"), "{path}");
    std::fs::remove_file(path).unwrap();

    alice.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_land_inside_the_senders_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _addr, alice, mut bob) = pair(tmp.path(), (11, 12)).await;
    let src = tmp.path().join("payload.txt");
    std::fs::write(&src, b"not really /etc/passwd").unwrap();
    let sha = sha256_file(&src);
    let folder = bob.profile.join("downloads").join("alice");
    for (name, expect) in [
        ("../../etc/passwd", "___etc_passwd"),
        ("CON", "_CON"),
        ("a/b\\c", "a_b_c"),
        ("/abs/x", "_abs_x"),
        ("..", "file"),
    ] {
        let id = alice
            .client
            .send_file_as("bob", &src, name, 22, sha)
            .await
            .unwrap();
        let done = bob
            .wait_for(
                20,
                name,
                |e| matches!(e, Event::TransferComplete { transfer_id, .. } if *transfer_id == id),
            )
            .await;
        let Event::TransferComplete { path, .. } = done else {
            unreachable!()
        };
        let path = std::path::PathBuf::from(path);
        assert_eq!(path, folder.join(expect), "{name}");
        assert_eq!(path.parent(), Some(folder.as_path()));
        assert_eq!(std::fs::read(&path).unwrap(), b"not really /etc/passwd");
    }
    assert!(!tmp.path().join("etc").exists());
    alice.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_resumes_after_the_receiver_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr, mut alice, mut bob) = pair(tmp.path(), (13, 14)).await;
    let size = 512 * 1024 * 1024u64;
    let src = tmp.path().join("resume.bin");
    let want = patterned_file(&src, size);

    let id = alice.client.send_file("bob", &src).await.unwrap();
    // Let a good part arrive, then kill the receiver mid-file.
    bob.wait_for(120, "progress", |e| matches!(e, Event::TransferProgress { transfer_id, bytes, .. } if *transfer_id == id && *bytes > size / 5)).await;
    let mut bob = bob.restart(&addr, tmp.path(), 14).await;

    let started = bob
        .wait_for(60, "resumed", |e| matches!(e, Event::TransferStarted { transfer_id, direction: Direction::Incoming, .. } if *transfer_id == id))
        .await;
    let Event::TransferStarted { offset, .. } = started else {
        unreachable!()
    };
    assert!(offset > 0, "the receiver kept its .part file");
    assert!(
        size - offset < size,
        "bytes received after the restart are fewer than the file size"
    );
    let done = bob
        .wait_for(
            300,
            "complete",
            |e| matches!(e, Event::TransferComplete { transfer_id, .. } if *transfer_id == id),
        )
        .await;
    let Event::TransferComplete { path, .. } = done else {
        unreachable!()
    };
    assert_eq!(sha256_file(std::path::Path::new(&path)), want);
    alice
        .wait_for(
            30,
            "sender complete",
            |e| matches!(e, Event::TransferComplete { transfer_id, .. } if *transfer_id == id),
        )
        .await;

    alice.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_offers_wait_for_the_users_decision() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(&tmp.path().join("server")).await;
    let addr = server.local_addr.to_string();
    let mut alice = client(&addr, tmp.path(), "alice", 0).await;
    let mut bob = client_with(&addr, tmp.path(), "bob", 1, |c| {
        c.auto_accept = peerchat_client::AutoAccept::UpTo(10)
    })
    .await;
    register_login(&mut alice).await;
    register_login(&mut bob).await;
    befriend(&mut alice, &mut bob).await;
    let src = tmp.path().join("photo.jpg");
    std::fs::write(&src, vec![7u8; 1000]).unwrap();

    let id = alice.client.send_file("bob", &src).await.unwrap();
    let offered = bob
        .wait_for(
            20,
            "offer",
            |e| matches!(e, Event::FileOffered { transfer_id, .. } if *transfer_id == id),
        )
        .await;
    let Event::FileOffered { name, size, .. } = offered else {
        unreachable!()
    };
    assert_eq!((name.as_str(), size), ("photo.jpg", 1000));
    bob.client.accept_file(id).await.unwrap();
    bob.wait_for(
        20,
        "complete",
        |e| matches!(e, Event::TransferComplete { transfer_id, .. } if *transfer_id == id),
    )
    .await;
    assert_eq!(
        std::fs::read(bob.profile.join("downloads/alice/photo.jpg")).unwrap(),
        vec![7u8; 1000]
    );

    let id2 = alice.client.send_file("bob", &src).await.unwrap();
    bob.wait_for(
        20,
        "second offer",
        |e| matches!(e, Event::FileOffered { transfer_id, .. } if *transfer_id == id2),
    )
    .await;
    bob.client.decline_file(id2).await.unwrap();
    let cancelled = alice
        .wait_for(
            20,
            "declined",
            |e| matches!(e, Event::TransferCancelled { transfer_id, .. } if *transfer_id == id2),
        )
        .await;
    let Event::TransferCancelled { reason, .. } = cancelled else {
        unreachable!()
    };
    assert_eq!(reason, FileCancelReason::Declined);
    assert!(!bob.profile.join("downloads/alice/photo (1).jpg").exists());

    alice.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}

/// Issue #10 item 8: a friend named `alice.` got the same download folder as `alice`, and a
/// symbolic link inside the downloads folder was followed (SPEC.md §8.4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_friend_has_its_own_folder_and_links_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(&tmp.path().join("server")).await;
    let addr = server.local_addr.to_string();
    let mut alice = client(&addr, tmp.path(), "alice", 4).await;
    let mut alice_dot = client(&addr, tmp.path(), "alice.", 5).await;
    let mut bob = client(&addr, tmp.path(), "bob", 6).await;
    register_login(&mut alice).await;
    register_login(&mut bob).await;
    // "alice.@example.org" is no e-mail address; the userid is valid (SPEC.md §5.1.1).
    alice_dot
        .client
        .register("alice.", "alice-dot@example.org", PASSWORD)
        .await
        .unwrap();
    alice_dot.client.login("alice.", PASSWORD).await.unwrap();
    alice_dot
        .wait_for(10, "logged_in", |e| matches!(e, Event::LoggedIn { .. }))
        .await;
    befriend(&mut alice, &mut bob).await;
    befriend(&mut alice_dot, &mut bob).await;
    let src = tmp.path().join("same.txt");

    let mut paths = Vec::new();
    for (sender, text) in [(&mut alice, "from alice"), (&mut alice_dot, "from alice.")] {
        std::fs::write(&src, text).unwrap();
        let id = sender.client.send_file("bob", &src).await.unwrap();
        let done = bob
            .wait_for(
                20,
                text,
                |e| matches!(e, Event::TransferComplete { transfer_id, .. } if *transfer_id == id),
            )
            .await;
        let Event::TransferComplete { path, .. } = done else {
            unreachable!()
        };
        assert!(path.ends_with("same.txt"), "{path}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        paths.push(std::path::PathBuf::from(path));
    }
    assert_ne!(
        paths[0].parent(),
        paths[1].parent(),
        "one folder per friend"
    );

    // bob's folder for alice is replaced by a link to somewhere else: refused, not followed.
    #[cfg(unix)]
    {
        let folder = bob.profile.join("downloads").join("alice");
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::remove_dir_all(&folder).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &folder).unwrap();
        std::fs::write(&src, "through a link?").unwrap();
        let id = alice.client.send_file("bob", &src).await.unwrap();
        let cancelled = alice
            .wait_for(
                20,
                "refused",
                |e| matches!(e, Event::TransferCancelled { transfer_id, .. } if *transfer_id == id),
            )
            .await;
        let Event::TransferCancelled { reason, .. } = cancelled else {
            unreachable!()
        };
        assert_eq!(reason, FileCancelReason::IoError);
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    alice.client.shutdown().await;
    alice_dot.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}

/// Settings take effect at once (issue #15): an offer that waited for the user before
/// `update_settings` is taken without asking after it, into the new folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_settings_apply_to_the_next_offer_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_server(&tmp.path().join("server")).await;
    let addr = server.local_addr.to_string();
    let mut alice = client(&addr, tmp.path(), "alice", 0).await;
    let mut bob = client_with(&addr, tmp.path(), "bob", 1, |c| {
        c.auto_accept = peerchat_client::AutoAccept::Never
    })
    .await;
    register_login(&mut alice).await;
    register_login(&mut bob).await;
    befriend(&mut alice, &mut bob).await;
    let src = tmp.path().join("notes.txt");
    std::fs::write(&src, vec![3u8; 500]).unwrap();

    let id = alice.client.send_file("bob", &src).await.unwrap();
    bob.wait_for(
        20,
        "offer that asks",
        |e| matches!(e, Event::FileOffered { transfer_id, .. } if *transfer_id == id),
    )
    .await;
    bob.client.decline_file(id).await.unwrap();

    let elsewhere = tmp.path().join("Elsewhere");
    bob.client
        .update_settings(&elsewhere, peerchat_client::AutoAccept::UpTo(1000))
        .await
        .unwrap();
    let id2 = alice.client.send_file("bob", &src).await.unwrap();
    let done = bob
        .wait_for(20, "taken without asking", |e| {
            matches!(e, Event::TransferComplete { transfer_id, .. } | Event::FileOffered { transfer_id, .. } if *transfer_id == id2)
        })
        .await;
    let Event::TransferComplete { path, .. } = done else {
        panic!("asked again: {done:?}")
    };
    assert_eq!(
        std::path::PathBuf::from(path),
        elsewhere.join("alice/notes.txt")
    );
    assert_eq!(
        std::fs::read(elsewhere.join("alice/notes.txt")).unwrap(),
        vec![3u8; 500]
    );
    alice.client.shutdown().await;
    bob.client.shutdown().await;
    server.shutdown().await;
}
