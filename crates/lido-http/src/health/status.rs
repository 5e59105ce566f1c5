//! [`Status`]: a check's verdict, the bottom of the health layers.

use std::fmt;

/// A check's verdict, ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Status {
    /// Healthy.
    #[default]
    Pass,
    /// Healthy, with concerns (degraded).
    Warn,
    /// Unhealthy.
    Fail,
}

impl Status {
    /// `pass`, `warn` or `fail`, as in the health+json draft.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Warn => "warn",
            Self::Fail => "fail",
        }
    }

    /// Every status, best first.
    pub const ALL: [Status; 3] = [Self::Pass, Self::Warn, Self::Fail];

    /// The HTTP status code for a document with this status: 200, or 503 for `fail`.
    pub fn http_code(self) -> u16 {
        match self {
            Self::Pass | Self::Warn => 200,
            Self::Fail => 503,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
