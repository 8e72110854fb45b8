//! Keyset pagination shared by the listings: a page size, and an opaque cursor naming the last
//! row of the previous page by its `(time, id)` key, newest first.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;

/// The page size asked for, 1 to 100, or `default`.
pub(crate) fn page_size(requested: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit must be between 1 and 100, got {n}"
        ))),
    }
}

/// The key after which a page starts; `None` (or an empty cursor) for the first page.
pub(crate) fn after_cursor(
    cursor: Option<&str>,
) -> Result<Option<(OffsetDateTime, Uuid)>, ApiError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(decode_cursor)
        .transpose()
}

/// Rows were fetched with `limit + 1`: keep `limit` of them, and a cursor when there is more.
pub(crate) fn split_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    key: impl Fn(&T) -> (OffsetDateTime, Uuid),
) -> (Vec<T>, Option<String>) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() <= limit {
        return (rows, None);
    }
    rows.truncate(limit);
    let cursor = rows.last().map(|row| {
        let (time, id) = key(row);
        encode_cursor(time, id)
    });
    (rows, cursor)
}

fn encode_cursor(time: OffsetDateTime, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", time.unix_timestamp_nanos()))
}

fn decode_cursor(cursor: &str) -> Result<(OffsetDateTime, Uuid), ApiError> {
    let invalid =
        || ApiError::BadRequest("invalid cursor; pass `next_cursor` from the previous page".into());
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(raw).map_err(|_| invalid())?;
    let (nanos, id) = text.split_once('|').ok_or_else(invalid)?;
    let nanos: i128 = nanos.parse().map_err(|_| invalid())?;
    let time = OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .filter(|t| (1970..=9999).contains(&t.year()))
        .ok_or_else(invalid)?;
    Ok((time, id.parse().map_err(|_| invalid())?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let time = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(time, id)).unwrap(), (time, id));
        assert!(after_cursor(Some("not a cursor")).is_err());
        assert_eq!(after_cursor(Some("")).unwrap(), None);
    }

    #[test]
    fn a_full_page_gets_a_cursor_and_a_short_one_does_not() {
        let time = OffsetDateTime::UNIX_EPOCH;
        let rows: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let (page, cursor) = split_page(rows.clone(), 2, |id| (time, *id));
        assert_eq!(page, rows[..2]);
        assert_eq!(
            after_cursor(cursor.as_deref()).unwrap(),
            Some((time, rows[1]))
        );
        let (page, cursor) = split_page(rows.clone(), 3, |id| (time, *id));
        assert_eq!((page.len(), cursor), (3, None));
    }
}
