//! A statement's `/* class=NAME */` tag: the class it asks for by name.

/// The class a `/* class=NAME */` comment names, if any.
pub fn tag(sql: &str) -> Option<&str> {
    let mut rest = sql;
    while let Some(start) = comment_start(rest) {
        let body_start = start + 2;
        let end = rest[body_start..].find("*/")? + body_start;
        let body = rest[body_start..end].trim();
        if let Some(name) = body.strip_prefix("class=").or(body.strip_prefix("class =")) {
            let name = name.trim();
            if !name.is_empty() {
                return Some(name);
            }
        }
        rest = &rest[end + 2..];
    }
    None
}

/// Where the first `/*` in `s` is. Looks for `/` alone (a byte search)
/// and checks the next byte: this runs on every classified call, and most
/// statements have no comment at all.
fn comment_start(s: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].find('/') {
        let at = from + i;
        if s.as_bytes().get(at + 1) == Some(&b'*') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_block_comments_only() {
        assert_eq!(tag("/* class=batch */ SELECT 1"), Some("batch"));
        assert_eq!(
            tag("SELECT 1 /* hint */ /* class = reports */"),
            Some("reports")
        );
        assert_eq!(tag("SELECT '/* class=batch' "), None);
        assert_eq!(tag("SELECT 1 -- class=batch"), None);
        assert_eq!(tag("/* class= */ SELECT 1"), None);
        assert_eq!(tag("SELECT 4/2 /* class=x */"), Some("x"));
        assert_eq!(tag("SELECT 4/2"), None);
    }
}
