//! Sign-in throttling per account: after a few failed sign-ins for one email, that email is
//! locked out for a while, doubling with each further failure. Kept in the database, so the
//! limit holds behind any number of gateways and replicas, and counted for any email, so the
//! answer tells nothing about which accounts exist. Attempts for one email are checked one at a
//! time (a transaction-scoped advisory lock; a second attempt waits up to a second for it, then
//! is refused), so parallel guesses cannot all pass the check before the first failure counts.

use orion_persistence::credentials;
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};

use crate::error::ApiError;

/// Failed sign-ins in a row an email gets before it is locked out.
const FREE_FAILURES: i32 = 5;
/// A failure this long after the previous one starts the count again.
const WINDOW: Duration = Duration::hours(1);
/// The first lockout; each further failure doubles it, up to [`LONGEST_LOCKOUT`].
const FIRST_LOCKOUT: Duration = Duration::seconds(30);
const LONGEST_LOCKOUT: Duration = Duration::minutes(15);
/// Rows this idle are forgotten.
const FORGET_AFTER: Duration = Duration::days(1);

/// A transaction holding `email`'s sign-in lock, once no other sign-in for it is being checked
/// (waiting up to a second, without holding a connection meanwhile); `429` with `Retry-After`
/// if none comes, or while the email is locked out.
pub(crate) async fn begin(
    pool: &orion_persistence::Pool,
    email: &str,
    now: OffsetDateTime,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, ApiError> {
    for _ in 0..LOCK_TRIES {
        let mut tx = crate::routes::begin(pool).await?;
        if credentials::try_lock_login(&mut tx, email).await? {
            if let Some(until) = credentials::login_locked_until(&mut tx, email, now).await? {
                return Err(locked_out(until - now));
            }
            return Ok(tx);
        }
        drop(tx);
        tokio::time::sleep(LOCK_WAIT).await;
    }
    Err(ApiError::SignInBusy)
}

/// How often, and how long apart, a sign-in tries for its account's lock.
const LOCK_TRIES: u32 = 20;
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Counts a failed sign-in; the failure that reaches the limit starts a lockout.
pub(crate) async fn failed(
    conn: &mut PgConnection,
    email: &str,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let failures = credentials::record_login_failure(conn, email, now, WINDOW).await?;
    if let Some(lockout) = lockout(failures) {
        credentials::lock_login(conn, email, now + lockout).await?;
        tracing::warn!(
            failures,
            lockout_s = lockout.whole_seconds(),
            "sign-ins locked out"
        );
    }
    Ok(())
}

/// A successful sign-in clears the count.
pub(crate) async fn succeeded(
    conn: &mut PgConnection,
    email: &str,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    credentials::clear_login_failures(conn, email, now, FORGET_AFTER).await?;
    Ok(())
}

/// How long `failures` in a row lock an email out, if they do.
fn lockout(failures: i32) -> Option<Duration> {
    let beyond = u32::try_from(failures.checked_sub(FREE_FAILURES)?).ok()?;
    let doubled = 1i32
        .checked_shl(beyond)
        .filter(|factor| *factor > 0)
        .and_then(|factor| FIRST_LOCKOUT.checked_mul(factor));
    Some(doubled.map_or(LONGEST_LOCKOUT, |d| d.min(LONGEST_LOCKOUT)))
}

fn locked_out(left: Duration) -> ApiError {
    let seconds = u64::try_from(left.whole_seconds()).unwrap_or(0) + 1;
    ApiError::TooManyAttempts(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_start_at_the_limit_double_and_stop_growing() {
        assert_eq!(lockout(1), None);
        assert_eq!(lockout(FREE_FAILURES - 1), None);
        assert_eq!(lockout(FREE_FAILURES), Some(Duration::seconds(30)));
        assert_eq!(lockout(FREE_FAILURES + 1), Some(Duration::seconds(60)));
        assert_eq!(lockout(FREE_FAILURES + 5), Some(LONGEST_LOCKOUT));
        assert_eq!(lockout(FREE_FAILURES + 40), Some(LONGEST_LOCKOUT));
        assert_eq!(lockout(i32::MAX), Some(LONGEST_LOCKOUT));
    }
}
