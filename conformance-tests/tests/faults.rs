//! A suite that cannot fail is worthless: start our server with each deliberate defect and
//! check that the case written for that rule FAILS.

mod common;

use peerchat_conformance::{cases, runner::run_cases, Status};

/// (fault, cases that must fail against it).
const FAULTS: &[(&str, &[&str])] = &[
    (
        "no-offline-push",
        &[
            "presence.offline.on-disconnect",
            "presence.offline.on-logout",
        ],
    ),
    (
        "find-reveals-nothing",
        &["friends.find.found", "friends.find.self"],
    ),
    (
        "no-rate-limit",
        &["abuse.rate-limit.burst", "abuse.rate-limit.disconnect"],
    ),
    ("accept-any-key-login", &["auth.keylogin.wrong-key"]),
    (
        "change-password-unchecked",
        &[
            "auth.change-password.wrong-old",
            "auth.change-password.lockout",
        ],
    ),
    ("relay-strangers", &["relay.not-friends"]),
    ("relay-tamper", &["relay.opaque"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_fault_is_caught() {
    let mut missed = Vec::new();
    for (fault, expect_fail) in FAULTS {
        let server = common::start(&[fault]).await;
        let selected = cases::all()
            .into_iter()
            .filter(|c| expect_fail.contains(&c.id))
            .collect::<Vec<_>>();
        assert_eq!(
            selected.len(),
            expect_fail.len(),
            "unknown case id in {expect_fail:?}"
        );
        let report = run_cases(server.suite_config(), selected).await;
        server.stop().await;
        for o in &report.outcomes {
            println!("[{fault}] {}", o.line());
            if o.status != Status::Fail {
                missed.push(format!("{fault}: {} did not fail ({})", o.id, o.reason));
            }
        }
    }
    assert!(
        missed.is_empty(),
        "faults not caught:\n{}",
        missed.join("\n")
    );
}
