//! libpq's `target_session_attrs`: whether a started session is on the
//! kind of server asked for (read-write, read-only, primary, standby).

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::config::pgconfig::TargetSessionAttrs;
use crate::error::SessionMismatch;

/// libpq's `target_session_attrs` check, one round trip (none for `any`).
/// `Err` names what the server is.
pub(crate) async fn check_session(
    client: &Client,
    attrs: TargetSessionAttrs,
) -> Result<(), SessionMismatch> {
    use TargetSessionAttrs as T;
    if matches!(attrs, T::Any) {
        return Ok(());
    }
    let rows = client
        .simple_query(
            "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only')",
        )
        .await
        .map_err(|_| SessionMismatch::CheckFailed)?;
    let Some((recovery, read_only)) = rows.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some((r.get(0) == Some("t"), r.get(1) == Some("on"))),
        _ => None,
    }) else {
        return Err(SessionMismatch::CheckReturnedNoRow);
    };
    session_matches(attrs, recovery, read_only)
}

/// Whether a server in recovery `recovery` whose session is `read_only` matches `attrs`.
fn session_matches(
    attrs: TargetSessionAttrs,
    recovery: bool,
    read_only: bool,
) -> Result<(), SessionMismatch> {
    use SessionMismatch as M;
    use TargetSessionAttrs as T;
    match attrs {
        T::ReadWrite if read_only => Err(M::ReadOnly),
        T::ReadOnly if !read_only => Err(M::NotReadOnly),
        T::Primary if recovery => Err(M::InHotStandby),
        T::Standby | T::PreferStandby if !recovery => Err(M::NotInHotStandby),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TargetSessionAttrs as T;

    #[test]
    fn session_attrs_follow_libpq() {
        // (in recovery, read-only) for a primary, a read-only primary, a standby.
        let servers = [(false, false), (false, true), (true, true)];
        let want = |attrs, expect: [bool; 3]| {
            for (i, (rec, ro)) in servers.into_iter().enumerate() {
                assert_eq!(
                    session_matches(attrs, rec, ro).is_ok(),
                    expect[i],
                    "{attrs:?} on server {i}"
                );
            }
        };
        want(T::Any, [true, true, true]);
        want(T::ReadWrite, [true, false, false]);
        want(T::ReadOnly, [false, true, true]);
        want(T::Primary, [true, true, false]);
        want(T::Standby, [false, false, true]);
        want(T::PreferStandby, [false, false, true]);
    }
}
