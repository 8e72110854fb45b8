//! When a failed delivery is tried again: after each failed attempt, the next delay of the
//! schedule, spread by ±20 % so that the retries of many deliveries that failed together (a
//! receiver's outage) do not arrive together. After the last delay's attempt fails, the
//! delivery has failed for good.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::{Error, Result};

/// Standard Webhooks' recommended schedule: about 27 hours of retries.
pub const DEFAULT: &str = "5s,5m,30m,2h,5h,10h,10h";

/// Longest delay between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

/// How far a delay may be moved either way, as a fraction of it.
const JITTER: f64 = 0.2;

/// The delays before each retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    /// The delay before the next attempt, after `attempts` have failed; `None` when the schedule
    /// is spent.
    pub fn next_delay(&self, attempts: u32) -> Option<Duration> {
        let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
        let delay = *self.delays.get(index)?;
        let spread = 1.0 + JITTER * (fastrand::f64() * 2.0 - 1.0);
        Some(delay.mul_f64(spread))
    }

    /// Attempts a delivery gets in all: the first and one per delay.
    pub fn attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The longest delay, which also caps a receiver's `Retry-After`.
    pub fn longest(&self) -> Duration {
        self.delays.iter().copied().max().unwrap_or_default()
    }
}

impl FromStr for RetrySchedule {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        let delays = raw
            .split(',')
            .map(|part| {
                humantime::parse_duration(part.trim())
                    .map_err(|e| Error::Schedule(format!("{part:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        if delays.len() > 20 {
            return Err(Error::Schedule("at most 20 retries".into()));
        }
        if delays.iter().any(|d| *d > MAX_DELAY) {
            return Err(Error::Schedule("each delay at most 7 days".into()));
        }
        Ok(RetrySchedule { delays })
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        // The default is a constant that parses; the test below keeps it so.
        DEFAULT
            .parse()
            .unwrap_or(RetrySchedule { delays: Vec::new() })
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .delays
            .iter()
            .map(|d| humantime::format_duration(*d).to_string())
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_recommended_schedule() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 8);
        assert_eq!(schedule.longest(), Duration::from_secs(10 * 3600));
        assert_eq!(schedule, DEFAULT.parse().unwrap());
    }

    #[test]
    fn each_delay_stays_within_its_jitter_and_the_schedule_ends() {
        let schedule: RetrySchedule = "1s, 10s".parse().unwrap();
        for _ in 0..1_000 {
            let first = schedule.next_delay(1).unwrap();
            assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
            let second = schedule.next_delay(2).unwrap();
            assert!(second >= Duration::from_secs(8) && second <= Duration::from_secs(12));
        }
        assert_eq!(schedule.next_delay(3), None);
        assert_eq!(schedule.next_delay(0), None);
    }

    #[test]
    fn refuses_what_is_not_a_schedule() {
        assert!("5 parsecs".parse::<RetrySchedule>().is_err());
        assert!("".parse::<RetrySchedule>().is_err());
        assert!("5s,30days".parse::<RetrySchedule>().is_err());
    }
}
