//! Tables read mostly by sequential scans (`pg_stat_user_tables`): the
//! coarse signal that a table lacks an index, shown beside the statement
//! level advice.

use serde::Serialize;

use super::db::{col, AdviseError, Db};

/// A table with more sequential than index scans.
#[derive(Debug, Clone, Serialize)]
pub struct SeqScanTable {
    /// The table, as `regclass` prints it.
    pub table: String,
    /// `seq_scan`.
    pub seq_scans: i64,
    /// `seq_tup_read / seq_scan`: rows read per sequential scan.
    pub rows_per_seq_scan: f64,
    /// `idx_scan`.
    pub index_scans: i64,
    /// `n_live_tup`, or `pg_class.reltuples` when larger.
    pub live_rows: i64,
    /// Rows written (`n_tup_ins + n_tup_upd + n_tup_del`).
    pub rows_written: i64,
}

/// Tables of more than `min_rows` live rows scanned sequentially more often
/// than by index, most rows read first (at most `limit`).
pub async fn seq_scanned(
    db: &Db,
    min_rows: i64,
    limit: i64,
) -> Result<Vec<SeqScanTable>, AdviseError> {
    // reltuples as well: n_live_tup restarts at 0 with pg_stat_reset().
    let sql = "SELECT s.relid::regclass::text, s.seq_scan, \
               CASE WHEN s.seq_scan > 0 THEN s.seq_tup_read::float8 / s.seq_scan ELSE 0 END, \
               coalesce(s.idx_scan, 0), greatest(s.n_live_tup, c.reltuples::int8), \
               s.n_tup_ins + s.n_tup_upd + s.n_tup_del \
               FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
               WHERE s.seq_scan > coalesce(s.idx_scan, 0) \
               AND greatest(s.n_live_tup, c.reltuples::int8) > $1 \
               ORDER BY s.seq_tup_read DESC LIMIT $2";
    let rows = db
        .rows(sql, &[&min_rows, &limit])
        .await
        .map_err(|e| AdviseError::Database(format!("reading pg_stat_user_tables: {e}")))?;
    rows.iter()
        .map(|r| {
            Ok(SeqScanTable {
                table: col(r, 0)?,
                seq_scans: col(r, 1)?,
                rows_per_seq_scan: col(r, 2)?,
                index_scans: col(r, 3)?,
                live_rows: col(r, 4)?,
                rows_written: col(r, 5)?,
            })
        })
        .collect::<Result<_, String>>()
        .map_err(AdviseError::Database)
}
