//! Where a session is connected: the address cancel requests go to.

/// Where one connection went: used to send it cancel requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `hostaddr`, else the host name, else a Unix socket directory.
    pub(crate) connect_to: String,
    pub(crate) port: u16,
    /// The host name checked by TLS.
    pub(crate) tls_name: String,
}

impl Endpoint {
    pub(crate) fn is_unix(&self) -> bool {
        self.connect_to.starts_with('/')
    }

    /// `host:port` (the address connected to), or the Unix socket path.
    pub(crate) fn address(&self) -> String {
        if self.is_unix() {
            self.unix_socket().display().to_string()
        } else if self.connect_to.contains(':') {
            format!("[{}]:{}", self.connect_to, self.port)
        } else {
            format!("{}:{}", self.connect_to, self.port)
        }
    }

    /// The socket file in a Unix socket directory (libpq's `.s.PGSQL.{port}`).
    pub(crate) fn unix_socket(&self) -> std::path::PathBuf {
        let dir = self.connect_to.trim_end_matches('/');
        format!("{dir}/.s.PGSQL.{}", self.port).into()
    }
}
