//! Keeps the database password out of everything the dashboard serves.

use std::sync::Arc;

use serde_json::Value;

/// Replaces the password with `***`, by the rule every other `lido`
/// output uses ([`crate::dburl::scrub_secret`]).
#[derive(Clone, Default)]
pub struct Scrubber {
    password: Option<Arc<str>>,
}

impl Scrubber {
    /// A scrubber for `password`.
    pub fn new(password: Option<&str>) -> Self {
        Self {
            password: password.map(Arc::from),
        }
    }

    /// `text` without the password.
    pub fn text(&self, text: &str) -> String {
        match &self.password {
            Some(p) => crate::dburl::scrub_secret(text, p),
            None => text.to_owned(),
        }
    }

    /// Every string in `v` (keys included) without the password.
    pub fn value(&self, v: Value) -> Value {
        if self.password.is_none() {
            return v;
        }
        match v {
            Value::String(s) => Value::String(self.text(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(|x| self.value(x)).collect()),
            Value::Object(o) => Value::Object(
                o.into_iter()
                    .map(|(k, x)| (self.text(&k), self.value(x)))
                    .collect(),
            ),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_password_never_survives() {
        let s = Scrubber::new(Some("hunter2"));
        assert_eq!(s.text("auth hunter2 failed"), "auth *** failed");
        let v = s.value(json!({"a": ["x hunter2"], "hunter2": 1}));
        assert!(!v.to_string().contains("hunter2"), "{v}");
        assert_eq!(Scrubber::new(Some("a")).text("a b"), "a b");
        assert_eq!(Scrubber::default().text("down"), "down");
    }
}
