#![doc = include_str!("../../../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use lido_core::*;

/// The pool core (also re-exported at the crate root).
pub mod core {
    pub use lido_core::*;
}
