//! SQL text normalization, as pg_stat_statements does it on the server:
//! literals become `$n` placeholders (numbered after the statement's own
//! parameters), comments go, whitespace runs collapse to one space, and a
//! list of literals after `IN (` or `ARRAY[` collapses to one placeholder.
//! Two statements that differ only in their constants normalize to the same
//! text and the same [`fingerprint`].

/// Stands for a literal between the two passes (PostgreSQL rejects NUL in SQL).
const LIT: u8 = 0;

/// The normalized form of `sql`: no literal values, no comments, single spaces.
///
/// ```
/// use lido_postgres::normalize_sql;
/// assert_eq!(
///     normalize_sql("SELECT * FROM t  WHERE id = 42 AND name = 'bob' -- hi\n AND x = $1"),
///     "SELECT * FROM t WHERE id = $2 AND name = $3 AND x = $1"
/// );
/// assert_eq!(normalize_sql("select 1 where a in (1, 2, 3)"), "select $1 where a in ($2 /*, ... */)");
/// ```
pub fn normalize_sql(sql: &str) -> String {
    let mut scan = Scanner {
        s: sql,
        i: 0,
        out: String::with_capacity(sql.len()),
        space: false,
        max_param: 0,
    };
    scan.run();
    number(&scan.out, scan.max_param.saturating_add(1))
}

/// A stable 64-bit fingerprint (FNV-1a) of a normalized statement: the same
/// across processes and versions, for log correlation.
pub fn fingerprint(normalized: &str) -> u64 {
    normalized.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Pass one: comments and whitespace out, literals replaced by [`LIT`].
struct Scanner<'a> {
    s: &'a str,
    i: usize,
    out: String,
    space: bool,
    max_param: u32,
}

impl Scanner<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.s.as_bytes().get(self.i + ahead).copied()
    }

    fn emit(&mut self, token: &str) {
        if self.space && !self.out.is_empty() {
            self.out.push(' ');
        }
        self.space = false;
        self.out.push_str(token);
    }

    fn literal(&mut self) {
        self.emit("\0");
    }

    fn run(&mut self) {
        let s = self.s;
        while let Some(c) = self.peek(0) {
            match c {
                c if c.is_ascii_whitespace() || c == LIT => {
                    self.space = true;
                    self.i += 1;
                }
                b'-' if self.peek(1) == Some(b'-') => self.line_comment(),
                b'/' if self.peek(1) == Some(b'*') => self.block_comment(),
                b'\'' => self.quoted(self.i, false),
                b'"' => self.quoted_ident(),
                b'$' => self.dollar(),
                b'0'..=b'9' => self.number(),
                b'.' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.number(),
                c if is_ident_start(c) => self.word(),
                _ => {
                    self.emit(&s[self.i..self.i + 1]);
                    self.i += 1;
                }
            }
        }
    }

    fn line_comment(&mut self) {
        let rest = &self.s.as_bytes()[self.i..];
        self.i += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        self.space = true;
    }

    fn block_comment(&mut self) {
        let b = self.s.as_bytes();
        let mut depth = 0usize;
        while self.i < b.len() {
            if b[self.i..].starts_with(b"/*") {
                depth += 1;
                self.i += 2;
            } else if b[self.i..].starts_with(b"*/") {
                depth -= 1;
                self.i += 2;
                if depth == 0 {
                    break;
                }
            } else {
                self.i += 1;
            }
        }
        self.space = true;
    }

    /// A string constant whose opening quote is at `at`.
    fn quoted(&mut self, at: usize, backslash: bool) {
        let b = self.s.as_bytes();
        let mut j = at + 1;
        while j < b.len() {
            match b[j] {
                b'\\' if backslash => j += 2,
                b'\'' if b.get(j + 1) == Some(&b'\'') => j += 2,
                b'\'' => {
                    j += 1;
                    break;
                }
                _ => j += 1,
            }
        }
        self.i = j.min(b.len());
        self.literal();
    }

    fn quoted_ident(&mut self) {
        let (s, b) = (self.s, self.s.as_bytes());
        let mut j = self.i + 1;
        while j < b.len() {
            if b[j] == b'"' {
                if b.get(j + 1) == Some(&b'"') {
                    j += 2;
                    continue;
                }
                j += 1;
                break;
            }
            j += 1;
        }
        let j = j.min(b.len());
        self.emit(&s[self.i..j]);
        self.i = j;
    }

    /// `$1` (a parameter, kept), `$tag$...$tag$` (a literal), or a lone `$`.
    fn dollar(&mut self) {
        let (s, b) = (self.s, self.s.as_bytes());
        let digits = b[self.i + 1..].iter().take_while(|c| c.is_ascii_digit());
        let n = digits.count();
        if n > 0 {
            let end = self.i + 1 + n;
            let k: u32 = s[self.i + 1..end].parse().unwrap_or(u32::MAX);
            self.max_param = self.max_param.max(k);
            self.emit(&s[self.i..end]);
            self.i = end;
            return;
        }
        let tag_len = b[self.i + 1..]
            .iter()
            .take_while(|&&c| is_ident_char(c) && c != b'$')
            .count();
        let close = self.i + 1 + tag_len;
        let starts_ok = tag_len == 0 || !b[self.i + 1].is_ascii_digit();
        if b.get(close) == Some(&b'$') && starts_ok {
            let tag = &s[self.i..=close];
            let body = close + 1;
            self.i = s[body..]
                .find(tag)
                .map_or(b.len(), |p| body + p + tag.len());
            self.literal();
        } else {
            self.emit("$");
            self.i += 1;
        }
    }

    fn number(&mut self) {
        let b = self.s.as_bytes();
        let mut j = self.i;
        let radix = b.get(j) == Some(&b'0')
            && matches!(b.get(j + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B'));
        if radix {
            j += 2;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
        } else {
            j = digits(b, j);
            if b.get(j) == Some(&b'.') {
                j = digits(b, j + 1);
            }
            if matches!(b.get(j), Some(b'e' | b'E')) {
                let sign = usize::from(matches!(b.get(j + 1), Some(b'+' | b'-')));
                if b.get(j + 1 + sign).is_some_and(u8::is_ascii_digit) {
                    j = digits(b, j + 1 + sign);
                }
            }
        }
        self.i = j;
        self.literal();
    }

    /// A keyword or identifier, or the prefix of `E'…'`, `B'…'`, `X'…'`, `N'…'`, `U&'…'`.
    fn word(&mut self) {
        let (s, b) = (self.s, self.s.as_bytes());
        let start = self.i;
        let mut j = start;
        while j < b.len() && is_ident_char(b[j]) {
            j += 1;
        }
        let w = &b[start..j];
        let next = b.get(j).copied();
        if w.len() == 1 && next == Some(b'\'') {
            match w[0].to_ascii_lowercase() {
                b'e' => return self.quoted(j, true),
                b'b' | b'x' | b'n' => return self.quoted(j, false),
                _ => {}
            }
        }
        if w.eq_ignore_ascii_case(b"u") && next == Some(b'&') && b.get(j + 1) == Some(&b'\'') {
            return self.quoted(j + 1, false);
        }
        self.emit(&s[start..j]);
        self.i = j;
    }
}

fn digits(b: &[u8], mut j: usize) -> usize {
    while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'_') {
        j += 1;
    }
    j
}

/// Pass two: numbers the literals, squashing `IN (…)` and `ARRAY[…]` lists of them.
fn number(text: &str, mut next: u32) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 8);
    let mut from = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c != LIT && c != b'(' && c != b'[' {
            i += 1;
            continue;
        }
        out.push_str(&text[from..i]);
        let squash = match c {
            b'(' if ends_with_word(&out, "in") => squashable(b, i + 1, b')'),
            b'[' if ends_with_word(&out, "array") => squashable(b, i + 1, b']'),
            _ => None,
        };
        match (c, squash) {
            (LIT, _) => {
                out.push_str(&format!("${next}"));
                next += 1;
                i += 1;
            }
            (open, Some(end)) => {
                let close = if open == b'(' { ')' } else { ']' };
                out.push_str(&format!("{}${next} /*, ... */{close}", open as char));
                next += 1;
                i = end;
            }
            (_, None) => {
                out.push(c as char);
                i += 1;
            }
        }
        from = i;
    }
    out.push_str(&text[from..]);
    out
}

/// Whether `out` ends with the keyword `word` (any case) standing alone.
fn ends_with_word(out: &str, word: &str) -> bool {
    let t = out.trim_end().as_bytes();
    let n = word.len();
    t.len() >= n
        && t[t.len() - n..].eq_ignore_ascii_case(word.as_bytes())
        && (t.len() == n || !is_ident_char(t[t.len() - n - 1]))
}

/// `LIT (, LIT)+` then `close` from `start` (spaces allowed): the index after `close`.
fn squashable(b: &[u8], start: usize, close: u8) -> Option<usize> {
    let skip = |mut j: usize| {
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
        j
    };
    let mut j = skip(start);
    let mut items = 0;
    loop {
        if b.get(j) != Some(&LIT) {
            return None;
        }
        items += 1;
        j = skip(j + 1);
        match b.get(j) {
            Some(b',') => j = skip(j + 1),
            Some(&c) if c == close && items >= 2 => return Some(j + 1),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_numbered_placeholders() {
        let n = normalize_sql;
        assert_eq!(
            n("SELECT * FROM t WHERE a = 1 AND b = 'x'"),
            "SELECT * FROM t WHERE a = $1 AND b = $2"
        );
        assert_eq!(n("SELECT $2, 1.5e-3, .5, 0x1F"), "SELECT $2, $3, $4, $5");
        assert_eq!(
            n("SELECT E'it\\'s', 'a''b', B'0101', U&'d\\0061t', $$x$$, $q$ 'y' $q$"),
            "SELECT $1, $2, $3, $4, $5, $6"
        );
        assert_eq!(n("SELECT t1.c2 FROM t1"), "SELECT t1.c2 FROM t1");
        assert_eq!(
            n(r#"SELECT "col 1" FROM "T""x""#),
            r#"SELECT "col 1" FROM "T""x""#
        );
        assert_eq!(n("SELECT a$1 FROM b"), "SELECT a$1 FROM b");
        assert_eq!(n("SELECT '2024-01-01'::date"), "SELECT $1::date");
    }

    #[test]
    fn comments_and_whitespace_go() {
        assert_eq!(
            normalize_sql("  SELECT\n\t1 /* a /* nested */ c */ -- tail\n FROM  t  "),
            "SELECT $1 FROM t"
        );
        assert_eq!(normalize_sql("SELECT 'unterminated"), "SELECT $1");
        assert_eq!(
            normalize_sql("SELECT héllo, 'é' FROM ñ"),
            "SELECT héllo, $1 FROM ñ"
        );
    }

    #[test]
    fn in_lists_and_arrays_squash() {
        let a = normalize_sql("SELECT * FROM t WHERE id IN (1, 2, 3)");
        let b = normalize_sql("SELECT * FROM t WHERE id IN (4,5)");
        assert_eq!(a, "SELECT * FROM t WHERE id IN ($1 /*, ... */)");
        assert_eq!(a, b);
        assert_eq!(
            normalize_sql("SELECT f(1, 2) WHERE x = ANY(ARRAY[1,2])"),
            "SELECT f($1, $2) WHERE x = ANY(ARRAY[$3 /*, ... */])"
        );
        assert_eq!(
            normalize_sql("SELECT 1 WHERE a IN (1)"),
            "SELECT $1 WHERE a IN ($2)"
        );
        assert_eq!(
            normalize_sql("SELECT 1 WHERE a IN ($1, 2)"),
            "SELECT $2 WHERE a IN ($1, $3)"
        );
    }

    #[test]
    fn same_shape_same_fingerprint() {
        let a = normalize_sql("SELECT * FROM t WHERE id = 1");
        let b = normalize_sql("select * from t where id = 2");
        let c = normalize_sql("SELECT * FROM t   WHERE id = 99");
        assert_eq!(fingerprint(&a), fingerprint(&c));
        assert_ne!(fingerprint(&a), fingerprint(&b), "case is kept");
        assert_eq!(fingerprint(""), 0xcbf2_9ce4_8422_2325);
    }
}
