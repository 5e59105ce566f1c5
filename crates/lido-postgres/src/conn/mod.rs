//! The connection layer, above [`crate::net`] and [`crate::obs`]:
//! [`PgConn`](pgconn::PgConn) and what lido tracks about it ([`pgconn`]),
//! its statement cache ([`stmt_cache`]), PgBouncer-mode parameter types
//! ([`params`]), recovery of abandoned calls and transactions
//! ([`recover`]), statements under a time limit ([`exec`], timed by
//! [`call_timer`]), transactions
//! ([`tx_sql`], [`transaction`]) and retrying transactions ([`retry`]).

pub(crate) mod call_timer;
pub(crate) mod classify;
pub(crate) mod exec;
pub(crate) mod params;
pub(crate) mod pgconn;
pub(crate) mod preempt;
pub(crate) mod recover;
pub(crate) mod retry;
pub(crate) mod stmt_cache;
pub(crate) mod transaction;
pub(crate) mod tx_sql;
