//! How hard the pruner may work on a store.

use std::time::Duration;

/// How the pruner paces itself on a store. Each batch is sized to take about `batch`; after a
/// full one the pruner rests `rest` times as long as the batch took (at most a second), so a
/// large backlog of old runs takes at most `1 / (1 + rest)` of the store's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrunePace {
    /// About how long one batch may take.
    pub batch: Duration,
    /// The rest after a full batch, as a multiple of the time it took.
    pub rest: u32,
}

impl PrunePace {
    /// The longest rest between two batches.
    pub const LONGEST_REST: Duration = Duration::from_secs(1);

    /// How long to rest after a batch that took `took`.
    #[must_use]
    pub fn rest_after(self, took: Duration) -> Duration {
        took.saturating_mul(self.rest).min(Self::LONGEST_REST)
    }
}

/// The pace of a store with one writer, where the hot path waits for all of a batch: short
/// batches, and the pruner working at most half the time. Why 1 ms: with 5 ms, `POST /run` p99
/// while 200,000 runs were pruned was 3.1x the same store's without pruning; with 1 ms, 1.31x
/// and 1.47x, deleting 14,000 to 20,000 runs/s instead of 50,000 (docs/scaling.md).
pub const ONE_WRITER: PrunePace = PrunePace { batch: Duration::from_millis(1), rest: 1 };

#[cfg(test)]
mod tests {
    use super::{ONE_WRITER, PrunePace};
    use std::time::Duration;

    #[test]
    fn the_rest_is_a_multiple_of_the_batch() {
        let pace = PrunePace { batch: Duration::from_millis(100), rest: 4 };
        assert_eq!(pace.rest_after(Duration::from_millis(30)), Duration::from_millis(120));
        assert_eq!(ONE_WRITER.rest_after(Duration::from_millis(3)), Duration::from_millis(3));
    }

    #[test]
    fn the_rest_never_passes_a_second() {
        let pace = PrunePace { batch: Duration::from_millis(100), rest: 4 };
        assert_eq!(pace.rest_after(Duration::from_millis(300)), PrunePace::LONGEST_REST);
        assert_eq!(pace.rest_after(Duration::MAX), PrunePace::LONGEST_REST, "no overflow");
    }

    #[test]
    fn no_rest_after_an_instant_batch_or_with_no_rest_asked() {
        assert_eq!(ONE_WRITER.rest_after(Duration::ZERO), Duration::ZERO);
        let eager = PrunePace { batch: Duration::from_millis(1), rest: 0 };
        assert_eq!(eager.rest_after(Duration::from_millis(50)), Duration::ZERO);
    }
}
