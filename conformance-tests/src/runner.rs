//! Runs cases: the parallel ones with a bounded number of jobs, then the exclusive ones one at
//! a time, then the ones that stop the server. Every case runs in its own task under its own
//! time-out, so a hung server or a panicking case never hangs or aborts the suite.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use crate::case::{Case, Schedule, Verdict};
use crate::cases;
use crate::config::{matches_filter, SuiteConfig};
use crate::ctx::Ctx;
use crate::report::{CaseOutcome, Report, Status};

/// Runs every registered case matching the configuration's filter.
pub async fn run_suite(cfg: SuiteConfig) -> Report {
    run_cases(cfg, cases::all()).await
}

/// Runs `cases` (filtered by `cfg.filter`).
pub async fn run_cases(cfg: SuiteConfig, cases: Vec<Case>) -> Report {
    let cfg = Arc::new(cfg);
    let selected: Vec<(usize, Case)> = cases
        .into_iter()
        .filter(|c| {
            cfg.filter
                .as_deref()
                .is_none_or(|f| matches_filter(f, c.id))
        })
        .enumerate()
        .collect();
    let mut results: Vec<Option<CaseOutcome>> = vec![None; selected.len()];

    let sem = Arc::new(Semaphore::new(cfg.jobs.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, case) in selected
        .iter()
        .filter(|(_, c)| c.schedule == Schedule::Parallel)
    {
        let (i, case, cfg, sem) = (*i, case.clone(), cfg.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            (i, run_one(cfg, case).await)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, outcome)) = joined {
            if cfg.verbose {
                println!("{}", outcome.line());
            }
            results[i] = Some(outcome);
        }
    }
    for phase in [Schedule::Exclusive, Schedule::Last] {
        for (i, case) in selected.iter().filter(|(_, c)| c.schedule == phase) {
            let outcome = run_one(cfg.clone(), case.clone()).await;
            if cfg.verbose {
                println!("{}", outcome.line());
            }
            results[*i] = Some(outcome);
        }
    }
    let outcomes = results
        .into_iter()
        .zip(selected.iter())
        .map(|(r, (_, c))| {
            r.unwrap_or_else(|| outcome(c, Status::Fail, "the case's task was lost".into(), 0))
        })
        .collect();
    Report { outcomes }
}

/// Runs one case in its own task under its time-out.
pub async fn run_one(cfg: Arc<SuiteConfig>, case: Case) -> CaseOutcome {
    let started = Instant::now();
    let ctx = Ctx { cfg };
    let run = case.run;
    let limit = case.timeout;
    let handle = tokio::spawn(async move { tokio::time::timeout(limit, run(ctx)).await });
    let (status, reason) = match handle.await {
        Ok(Ok(Ok(reason))) => (Status::Pass, reason),
        Ok(Ok(Err(Verdict::Fail(reason)))) => (Status::Fail, reason),
        Ok(Ok(Err(Verdict::Skip(reason)))) => (Status::Skip, reason),
        Ok(Err(_)) => (
            Status::Fail,
            format!("the case did not finish within {limit:?} (server hung or far too slow)"),
        ),
        Err(e) => (Status::Fail, format!("the case panicked: {e}")),
    };
    // A case marked with a known defect: its FAIL is expected (XFAIL, named by the audit
    // row); a PASS says the defect is gone and the mark should be removed.
    let (status, reason) = match (case.known_failure, status) {
        (Some(row), Status::Fail) => (
            Status::XFail,
            format!("known failure, audit {row}: {reason}"),
        ),
        (Some(row), Status::Pass) => (
            Status::Pass,
            format!(
                "passes although marked known failure (audit {row}): remove the mark; {reason}"
            ),
        ),
        _ => (status, reason),
    };
    outcome(&case, status, reason, started.elapsed().as_millis() as u64)
}

fn outcome(case: &Case, status: Status, reason: String, duration_ms: u64) -> CaseOutcome {
    CaseOutcome {
        id: case.id.into(),
        section: case.section.into(),
        level: case.level,
        description: case.description.into(),
        status,
        reason,
        duration_ms,
    }
}
