//! The bottom layer above [`crate::error`]: connection settings as libpq
//! reads them (URLs, `key=value` strings, the `PG*` environment), the
//! password wrapper, libpq's defaults and the session settings sent at
//! startup. Nothing here opens a socket.

pub(crate) mod conninfo;
pub(crate) mod defaults;
pub(crate) mod env;
pub(crate) mod percent;
pub(crate) mod pgconfig;
pub(crate) mod secret;
pub(crate) mod session;
pub(crate) mod url;
