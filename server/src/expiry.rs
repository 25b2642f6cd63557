//! The request-expiry sweeper (SPEC.md §6.7): every `sweep_interval`, deletes friend
//! requests whose expiry has passed and tells each requester FriendRequestExpired — now if
//! online, else as a notice at their next login. Also prunes the login limiter.

use std::sync::Arc;
use std::time::Duration;

use peerchat_proto::message::PushEvent;
use tokio_util::sync::CancellationToken;

use crate::db::entity::notice::NoticeKind;
use crate::state::Shared;

/// How often the login limiter forgets stale entries.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// One sweep at the shared clock's now. Returns how many requests expired.
pub async fn sweep_once(shared: &Shared) -> usize {
    let now = shared.now_ms();
    let expired = match shared
        .store
        .expire_requests(now, |u| shared.hub.is_online(u))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "request expiry sweep failed");
            return 0;
        }
    };
    for e in &expired {
        if !e.queued {
            crate::cmd::push_or_queue(
                shared,
                (&e.requester_lower, e.requester_id),
                NoticeKind::Expired,
                e.target_id,
                &PushEvent::FriendRequestExpired {
                    userid: e.target_userid.clone(),
                },
                false,
            )
            .await;
        }
    }
    if !expired.is_empty() {
        tracing::debug!(count = expired.len(), "friend requests expired");
    }
    expired.len()
}

/// Runs [`sweep_once`] every `interval` until `stop` is cancelled.
pub async fn run(shared: Arc<Shared>, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = std::time::Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        sweep_once(&shared).await;
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = std::time::Instant::now();
            shared.login_limits.prune(last_prune);
            shared.register_limits.prune(last_prune);
            shared.connect_limits.prune(last_prune);
        }
    }
}
