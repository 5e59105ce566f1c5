//! libpq's defaults for what a configuration leaves out: the user and the host.

/// The user when none is given: the operating-system user, as libpq.
pub fn default_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "postgres".to_owned())
}

/// libpq's host when none is given: the default Unix socket directory
/// (Debian's libpq: `/var/run/postgresql`; upstream's: `/tmp`), or
/// `localhost` where there are no Unix sockets.
pub fn default_host() -> String {
    if cfg!(unix) {
        let debian = std::path::Path::new("/var/run/postgresql");
        if debian.is_dir() {
            "/var/run/postgresql"
        } else {
            "/tmp"
        }
        .to_owned()
    } else {
        "localhost".to_owned()
    }
}
