//! The engine's time source: what "now" is, and how to wait until a wall-clock time.
//!
//! Certificates are scheduled in wall-clock time (validity, renewal times, next attempts are
//! `SystemTime`s persisted as Unix seconds); timers are tokio's, and so is the issuer gate's
//! clock (`tokio::time::Instant`). The driver reads "now" only through its [`Clock`], and
//! converts a wall-clock time to a gate instant by its offset from `now()`, read together with
//! `Instant::now()`. A clock must therefore advance with tokio's timer: [`WallClock`] does
//! because both follow the system; [`TokioClock`] does by construction, which makes it follow
//! tokio's paused time in tests (`tokio::time::pause`, `advance`, `start_paused`).

use std::fmt::Debug;
use std::time::{Duration, SystemTime};

use tokio::time::{Instant, Sleep};

use certkeeper_core::time::{UnixSeconds, to_unix};

/// What "now" is for the engine.
pub trait Clock: Debug + Send + Sync + 'static {
    /// The wall-clock time now.
    fn now(&self) -> SystemTime;

    /// [`now`](Self::now) in whole Unix seconds, as persisted.
    fn now_unix(&self) -> UnixSeconds {
        to_unix(self.now())
    }

    /// A tokio timer that completes at `at` by this clock (at once if `at` has passed).
    fn sleep_until(&self, at: SystemTime) -> Sleep {
        tokio::time::sleep(at.duration_since(self.now()).unwrap_or(Duration::ZERO))
    }
}

/// The system's clock: what the runtimes use.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Wall-clock time derived from tokio's clock: `epoch` at the moment it was created, then
/// advancing exactly as `tokio::time::Instant` does. Under paused time (tests) it stands still
/// until tokio's clock is advanced, and every timer of the engine fires at the wall-clock time
/// it was set for.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    epoch: SystemTime,
    start: Instant,
}

impl TokioClock {
    /// A clock reading `epoch` now.
    pub fn starting_at(epoch: SystemTime) -> Self {
        TokioClock {
            epoch,
            start: Instant::now(),
        }
    }

    /// The tokio instant at which this clock reads `at` (its start for a time before `epoch`).
    pub fn instant_at(&self, at: SystemTime) -> Instant {
        self.start + at.duration_since(self.epoch).unwrap_or(Duration::ZERO)
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.epoch + Instant::now().saturating_duration_since(self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_follows_paused_time() {
        let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = TokioClock::starting_at(epoch);
        assert_eq!(clock.now(), epoch);
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(clock.now(), epoch + Duration::from_millis(1500));
        assert_eq!(clock.now_unix(), 1_800_000_001);
        let at = epoch + Duration::from_secs(10);
        clock.sleep_until(at).await;
        assert_eq!(clock.now(), at);
        assert_eq!(clock.instant_at(at), Instant::now());
    }
}
