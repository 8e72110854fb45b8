//! Password hashing under a memory budget. Each argon2id hash or check holds 19 MiB for tens of
//! milliseconds of CPU; hundreds of logins at once would hold gigabytes and starve every other
//! request. At most the budget's worth run at once; a request that cannot start one within a
//! short wait is answered `503` with `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::error::ApiError;

/// How long a request waits for a free hashing slot before it is turned away.
const WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub(crate) struct PasswordHashing {
    slots: Arc<Semaphore>,
}

impl PasswordHashing {
    /// As many concurrent hashes as fit in `budget_mib`, at least one.
    pub(crate) fn new(budget_mib: u32) -> PasswordHashing {
        let per_hash_kib = orion_auth::HASH_MEMORY_KIB.max(1);
        let slots = (budget_mib.saturating_mul(1024) / per_hash_kib).max(1);
        PasswordHashing {
            slots: Arc::new(Semaphore::new(slots as usize)),
        }
    }

    /// Runs `hash` (a hash or a check) on a blocking thread once a slot is free.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let slot = match tokio::time::timeout(WAIT, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            _ => {
                metrics::counter!("password_hashes_refused_total").increment(1);
                return Err(ApiError::Unavailable(
                    "too many sign-ins at once; retry shortly".into(),
                ));
            }
        };
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            hash()
        })
        .await
        .map_err(ApiError::internal)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_budget_sets_the_slots() {
        assert_eq!(PasswordHashing::new(0).slots.available_permits(), 1);
        assert_eq!(PasswordHashing::new(19).slots.available_permits(), 1);
        assert_eq!(PasswordHashing::new(128).slots.available_permits(), 6);
    }

    #[tokio::test]
    async fn a_request_that_finds_no_slot_in_time_is_unavailable() {
        let hashing = PasswordHashing::new(19);
        let held = hashing.slots.clone().acquire_owned().await.unwrap();
        let refused = hashing.run(|| 1).await.unwrap_err();
        assert_eq!(refused.status(), 503);
        drop(held);
        assert_eq!(hashing.run(|| 2).await.unwrap(), 2);
    }
}
