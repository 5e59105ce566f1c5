//! What a statement does and to which table, for span names and
//! attributes (`db.operation.name`, `db.collection.name`, `SELECT orders`).
//! Read from the normalized text, so comments and literals are already gone.

/// The operation and main table of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The first keyword, upper case (`SELECT`, `INSERT`, ...).
    pub(crate) operation: Option<String>,
    /// The table the operation reads or writes, when it names one plainly.
    pub(crate) collection: Option<String>,
    /// The span name: `{operation} {collection}`, `{operation}`, or `postgresql`.
    pub(crate) name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Word(&'a str),
    Punct(u8),
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.' || c >= 0x80
}

/// Words (dotted and quoted names kept whole) and punctuation.
fn tokens(sql: &str) -> Vec<Token<'_>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < 64 {
        let c = b[i];
        if c == b' ' {
            i += 1;
        } else if is_word_byte(c) || c == b'"' {
            let start = i;
            let mut quoted = false;
            while i < b.len() && (quoted || is_word_byte(b[i]) || b[i] == b'"') {
                if b[i] == b'"' {
                    quoted = !quoted;
                }
                i += 1;
            }
            out.push(Token::Word(&sql[start..i]));
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    out
}

fn is_kw(t: Option<&Token<'_>>, kw: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw))
}

/// The name at `toks[i]` (skipping `ONLY` / `TABLE`), if it is one.
fn name_at(toks: &[Token<'_>], mut i: usize) -> Option<String> {
    while is_kw(toks.get(i), "only") || is_kw(toks.get(i), "table") {
        i += 1;
    }
    match toks.get(i) {
        Some(Token::Word(w)) if !w.starts_with('$') && !w.as_bytes()[0].is_ascii_digit() => {
            Some((*w).to_owned())
        }
        _ => None,
    }
}

/// The name after the first `kw` outside parentheses.
fn after(toks: &[Token<'_>], kw: &str) -> Option<String> {
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Token::Punct(b'(') => depth += 1,
            Token::Punct(b')') => depth -= 1,
            Token::Word(w) if depth == 0 && w.eq_ignore_ascii_case(kw) => {
                return name_at(toks, i + 1)
            }
            _ => {}
        }
    }
    None
}

/// The operation and table of a normalized statement.
pub(crate) fn summarize(normalized: &str) -> Summary {
    let toks = tokens(normalized);
    let operation = match toks.first() {
        Some(Token::Word(w)) if w.bytes().all(|c| c.is_ascii_alphabetic()) && w.len() <= 24 => {
            Some(w.to_ascii_uppercase())
        }
        _ => None,
    };
    let collection = match operation.as_deref() {
        Some("SELECT" | "DELETE") => after(&toks, "from"),
        Some("INSERT" | "MERGE") => after(&toks, "into"),
        Some("UPDATE" | "TRUNCATE" | "COPY" | "LOCK" | "TABLE") => name_at(&toks, 1),
        _ => None,
    };
    let name = match (&operation, &collection) {
        (Some(op), Some(c)) => format!("{op} {c}"),
        (Some(op), None) => op.clone(),
        _ => "postgresql".to_owned(),
    };
    Summary {
        operation,
        collection,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(sql: &str) -> (Option<String>, Option<String>) {
        let n = summarize(&crate::obs::normalize::normalize_sql(sql));
        (n.operation, n.collection)
    }

    #[test]
    fn operation_and_table() {
        let some = |a: &str, b: &str| (Some(a.to_owned()), Some(b.to_owned()));
        assert_eq!(
            s("select id from orders where x = 1"),
            some("SELECT", "orders")
        );
        assert_eq!(
            s("SELECT (SELECT 1 FROM a) FROM public.b"),
            some("SELECT", "public.b")
        );
        assert_eq!(
            s("INSERT INTO \"Order Lines\" VALUES (1)"),
            some("INSERT", "\"Order Lines\"")
        );
        assert_eq!(s("UPDATE t SET a = 1"), some("UPDATE", "t"));
        assert_eq!(s("DELETE FROM ONLY t"), some("DELETE", "t"));
        assert_eq!(s("SELECT 1"), (Some("SELECT".into()), None));
        assert_eq!(
            s("SELECT * FROM (SELECT 1) x"),
            (Some("SELECT".into()), None)
        );
        assert_eq!(s("(SELECT 1)"), (None, None));
        assert_eq!(summarize("").name, "postgresql");
        assert_eq!(summarize("SELECT $1").name, "SELECT");
        assert_eq!(summarize("SELECT $1 FROM t").name, "SELECT t");
    }
}
