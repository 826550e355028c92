//! Per-object counts of consecutive failed reconciles, which the error policy's backoff grows by.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most objects whose attempts are counted at once (the map is cleared when full).
const MAX_TRACKED: usize = 4096;

/// Consecutive failed reconciles per object (kind, name), reset by a success. Bounded: when
/// more than [`MAX_TRACKED`] objects fail at once the counts start over.
#[derive(Default)]
pub struct Backoffs {
    attempts: Mutex<HashMap<(&'static str, String), u32>>,
}

impl Backoffs {
    /// Count one more failure of the object; returns the attempt number (1-based).
    pub fn failed(&self, kind: &'static str, name: &str) -> u32 {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if attempts.len() >= MAX_TRACKED && !attempts.contains_key(&(kind, name.to_string())) {
            attempts.clear();
        }
        let n = attempts.entry((kind, name.to_string())).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forget the object's failures.
    pub fn succeeded(&self, kind: &'static str, name: &str) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if !attempts.is_empty() {
            attempts.remove(&(kind, name.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_per_object_and_reset_on_success() {
        let b = Backoffs::default();
        assert_eq!(b.failed("PatchRun", "a"), 1);
        assert_eq!(b.failed("PatchRun", "a"), 2);
        assert_eq!(b.failed("PatchRun", "b"), 1);
        assert_eq!(b.failed("PatchPolicy", "a"), 1, "kinds are apart");
        b.succeeded("PatchRun", "a");
        assert_eq!(b.failed("PatchRun", "a"), 1);
    }

    #[test]
    fn the_attempt_map_stays_bounded() {
        let b = Backoffs::default();
        for i in 0..(MAX_TRACKED + 10) {
            b.failed("PatchRun", &i.to_string());
        }
        let len = b.attempts.lock().expect("lock").len();
        assert!(len <= MAX_TRACKED, "{len}");
    }
}
