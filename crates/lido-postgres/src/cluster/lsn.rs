//! [`Lsn`]: a position in the write-ahead log, as PostgreSQL prints it
//! (`16/B374D848`).

use std::fmt;
use std::str::FromStr;

use tokio_postgres::types::{FromSql, Type};

/// A write-ahead-log position (`pg_lsn`): two hexadecimal halves of a
/// 64-bit byte offset, `16/B374D848`. Positions order as the log does, and
/// their difference is the number of bytes between them.
///
/// ```
/// use lido_postgres::cluster::Lsn;
/// let a: Lsn = "16/B374D848".parse()?;
/// let b: Lsn = "16/B374D948".parse()?;
/// assert!(a < b);
/// assert_eq!(b.bytes_after(a), 256);
/// assert_eq!(a.to_string(), "16/B374D848");
/// # Ok::<(), lido_postgres::cluster::LsnParseError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The zero position (`0/0`): before any write.
    pub const ZERO: Lsn = Lsn(0);

    /// The replay position that proves a replica has replayed everything a
    /// primary had inserted when `pg_current_wal_insert_lsn()` said `self`.
    ///
    /// The insert position is where the next record will start: the last
    /// record's end rounded up to 8 bytes, or, when that end was a page's
    /// end, past the next page's header (24 bytes; 40 at a segment start).
    /// A replica's `pg_last_wal_replay_lsn()` is the exact end of the last
    /// record it replayed, so it may never equal the insert position. No
    /// other record ends within 7 bytes of that end (a record is at least
    /// 24 bytes), so reaching `end - 7` proves the record was replayed.
    /// Assumes the default 8 kB WAL pages.
    pub fn replayed_mark(self) -> Lsn {
        const PAGE: u64 = 8192;
        let offset = self.0 % PAGE;
        let end = if offset == 24 || offset == 40 {
            self.0 - offset
        } else {
            self.0
        };
        Lsn(end.saturating_sub(7))
    }

    /// Bytes from `earlier` to `self`; 0 when `earlier` is not before `self`.
    pub fn bytes_after(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Text that is not a `pg_lsn` (`HIGH/LOW`, both hexadecimal, at most 8 digits each).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a WAL position: expected two hexadecimal numbers of at most 8 digits, `HIGH/LOW` (like 16/B374D848)")]
pub struct LsnParseError(pub String);

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || LsnParseError(s.chars().take(40).collect());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let half = |h: &str| -> Result<u64, LsnParseError> {
            if h.is_empty() || h.len() > 8 {
                return Err(bad());
            }
            u64::from_str_radix(h, 16).map_err(|_| bad())
        };
        Ok(Lsn((half(hi)? << 32) | half(lo)?))
    }
}

/// Read straight from a `pg_lsn` column (its binary form: 8 bytes, big
/// endian), so a query needs no `::text` and no parsing.
impl<'a> FromSql<'a> for Lsn {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 8] = raw
            .try_into()
            .map_err(|_| format!("a pg_lsn is 8 bytes, got {}", raw.len()))?;
        Ok(Lsn(u64::from_be_bytes(bytes)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::PG_LSN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders() {
        for text in ["0/0", "0/16B3748", "16/B374D848", "FFFFFFFF/FFFFFFFF"] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn.to_string(), text);
        }
        let a: Lsn = "1/0".parse().unwrap();
        let b: Lsn = "0/FFFFFFFF".parse().unwrap();
        assert!(b < a);
        assert_eq!(a.bytes_after(b), 1);
        assert_eq!(b.bytes_after(a), 0);
    }

    #[test]
    fn the_mark_of_an_insert_position_is_within_its_last_record() {
        // Mid-page: the last record ended up to 7 bytes before.
        assert_eq!(Lsn(0x1_0000_1238).replayed_mark(), Lsn(0x1_0000_1231));
        // Right after a page header: the last record ended at the page end.
        assert_eq!(Lsn(2 * 8192 + 24).replayed_mark(), Lsn(2 * 8192 - 7));
        assert_eq!(Lsn(16 << 20 | 40).replayed_mark(), Lsn((16 << 20) - 7));
        assert_eq!(Lsn::ZERO.replayed_mark(), Lsn::ZERO);
    }

    #[test]
    fn rejects_what_is_not_an_lsn() {
        for bad in ["", "16", "/1", "1/", "g/1", "123456789/0", "1/2/3"] {
            let e = bad.parse::<Lsn>().unwrap_err();
            assert!(e.to_string().contains("HIGH/LOW"), "{e}");
        }
    }
}
