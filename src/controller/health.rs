//! Liveness of the controller, behind `/healthz`: every watch must make progress (list, or
//! receive an event) and every reconcile must finish within a bounded time, or the endpoint
//! fails and the kubelet restarts the process.
//!
//! A watch that keeps failing (its list forbidden, its resource gone, the apiserver unreachable
//! past the bound) is stalled from its first failure until its next successful list or event; a
//! watch that never listed is stalled from the process start. A reconcile is stalled once it has
//! run longer than the bound (each API call has its own timeout, so only a hang gets there).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Progress of the watches and the reconciles in flight.
#[derive(Debug)]
pub struct Health {
    stall_after: Duration,
    /// Per watch: since when it has failed without progress (`None`: healthy).
    watches: Mutex<BTreeMap<&'static str, Option<Instant>>>,
    /// Reconciles in flight: id → (kind, start).
    reconciles: Mutex<HashMap<u64, (&'static str, Instant)>>,
    next_id: AtomicU64,
}

impl Health {
    /// Liveness failing after `stall_after` without progress.
    pub fn new(stall_after: Duration) -> Health {
        Health {
            stall_after,
            watches: Mutex::default(),
            reconciles: Mutex::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Register the watch `name`, stalled since `now` until it first makes progress.
    pub fn watch_started(&self, name: &'static str, now: Instant) {
        lock(&self.watches).entry(name).or_insert(Some(now));
    }

    /// The watch `name` listed or received an event.
    pub fn watch_progressed(&self, name: &'static str) {
        lock(&self.watches).insert(name, None);
    }

    /// The watch `name` failed (it retries with backoff); stalled since its first failure.
    pub fn watch_failed(&self, name: &'static str, now: Instant) {
        lock(&self.watches)
            .entry(name)
            .and_modify(|since| {
                since.get_or_insert(now);
            })
            .or_insert(Some(now));
    }

    /// A reconcile of `kind` starts; it counts as in flight until the guard is dropped.
    pub fn reconcile_started(&self, kind: &'static str, now: Instant) -> ReconcileGuard<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.reconciles).insert(id, (kind, now));
        ReconcileGuard { health: self, id }
    }

    /// `Err` with what stalled (a watch failing, a reconcile running) for longer than the bound.
    pub fn check(&self, now: Instant) -> Result<(), String> {
        let stalled = |since: Instant| now.saturating_duration_since(since) > self.stall_after;
        let mut problems: Vec<String> = lock(&self.watches)
            .iter()
            .filter_map(|(name, since)| {
                let since = (*since)?;
                stalled(since).then(|| {
                    format!(
                        "watch {name}: no progress for {}s",
                        now.saturating_duration_since(since).as_secs()
                    )
                })
            })
            .collect();
        let mut running: Vec<(&'static str, Instant)> = lock(&self.reconciles)
            .values()
            .copied()
            .filter(|(_, start)| stalled(*start))
            .collect();
        running.sort_by_key(|(_, start)| *start);
        problems.extend(running.into_iter().map(|(kind, start)| {
            format!(
                "{kind} reconcile running for {}s",
                now.saturating_duration_since(start).as_secs()
            )
        }));
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// A reconcile in flight (see [`Health::reconcile_started`]).
#[must_use = "the reconcile counts as in flight until the guard is dropped"]
pub struct ReconcileGuard<'a> {
    health: &'a Health,
    id: u64,
}

impl Drop for ReconcileGuard<'_> {
    fn drop(&mut self) {
        lock(&self.health.reconciles).remove(&self.id);
    }
}

/// A poisoned lock only means another thread panicked while holding it; the maps stay usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(60);

    #[test]
    fn a_watch_that_never_listed_stalls_after_the_bound_and_recovers_on_progress() {
        let start = Instant::now();
        let health = Health::new(BOUND);
        health.watch_started("PatchRun/stores", start);
        assert_eq!(health.check(start + BOUND), Ok(()));
        let err = health.check(start + BOUND * 2).expect_err("stalled");
        assert_eq!(err, "watch PatchRun/stores: no progress for 120s");
        health.watch_progressed("PatchRun/stores");
        assert_eq!(health.check(start + BOUND * 10), Ok(()));
    }

    #[test]
    fn a_failing_watch_is_stalled_from_its_first_failure_until_it_progresses() {
        let start = Instant::now();
        let health = Health::new(BOUND);
        health.watch_started("w", start);
        health.watch_progressed("w");
        health.watch_failed("w", start + BOUND);
        // Retries that fail again do not move the start of the stall.
        health.watch_failed("w", start + BOUND * 2);
        assert!(
            health
                .check(start + BOUND * 2 + Duration::from_secs(1))
                .is_err()
        );
        health.watch_progressed("w");
        assert_eq!(health.check(start + BOUND * 3), Ok(()));
    }

    #[test]
    fn a_reconcile_running_past_the_bound_fails_liveness_until_it_ends() {
        let start = Instant::now();
        let health = Health::new(BOUND);
        let guard = health.reconcile_started("PatchRun", start);
        assert_eq!(health.check(start + BOUND), Ok(()));
        assert_eq!(
            health.check(start + BOUND + Duration::from_secs(5)),
            Err("PatchRun reconcile running for 65s".to_string())
        );
        drop(guard);
        assert_eq!(health.check(start + BOUND * 5), Ok(()));
    }
}
