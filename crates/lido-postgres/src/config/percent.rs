//! Percent-encoding of URL components, both ways.

use std::borrow::Cow;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::error::ConfigError;

/// Characters left as they are when writing a URL component.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes one URL component.
pub(crate) fn enc(s: &str) -> Cow<'_, str> {
    utf8_percent_encode(s, KEEP).into()
}

pub(crate) fn dec(what: &str, s: &str) -> Result<String, ConfigError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| {
            ConfigError::Syntax(format!("{what} is not valid UTF-8 after percent-decoding"))
        })
}
