//! The network layer, above [`crate::config`]: the target list
//! ([`endpoint`]), TLS ([`tls`]), sockets and the dialer that opens a session
//! the way libpq does ([`socket`], [`dial`], [`plan`]), cancel requests
//! ([`cancel`]), whether the server answers ([`liveness`]) and the
//! tracking of the server's transaction status on the wire ([`wire`],
//! over [`framing`]). It
//! knows nothing of pooled connections: everything here takes plain data.

pub(crate) mod cancel;
pub(crate) mod dial;
pub(crate) mod endpoint;
pub(crate) mod events;
pub(crate) mod framing;
pub(crate) mod liveness;
pub(crate) mod notifications;
pub(crate) mod plan;
pub(crate) mod session_attrs;
pub(crate) mod socket;
pub(crate) mod startup;
pub(crate) mod target;
pub(crate) mod tls;
pub(crate) mod tls_stream;
pub(crate) mod wire;
