//! The tables a statement names: the identifier after `FROM`, `JOIN`,
//! `UPDATE`, `INTO` and `TABLE` (and each one of a `FROM a, b` list), with
//! its schema dropped and folded to lower case unless quoted. A lexer, not a
//! parser: it skips string literals, quoted identifiers and comments, and
//! errs on the side of naming more (a function in `FROM f(x)` is named too),
//! which is what query-class rules need.

/// The tables `sql` names, in order of first appearance, without repeats.
///
/// ```
/// let t = lido_postgres::tables_of(
///     "SELECT * FROM public.Orders o JOIN \"Items\" i ON i.o = o.id WHERE x = 'FROM y'",
/// );
/// assert_eq!(t, ["orders", "Items"]);
/// ```
pub fn tables_of(sql: &str) -> Vec<String> {
    let tokens = lex(sql);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let kw = matches!(&tokens[i], Tok::Word(w) if is_table_keyword(w));
        i += 1;
        if !kw {
            continue;
        }
        // `FROM a, b`: a list of names separated by commas (aliases skipped).
        while let Some((name, next)) = qualified_name(&tokens, i) {
            if !out.contains(&name) {
                out.push(name);
            }
            i = next;
            while i < tokens.len() && !matches!(tokens[i], Tok::Comma | Tok::Other) {
                if matches!(&tokens[i], Tok::Word(w) if is_clause(w)) {
                    break;
                }
                i += 1;
            }
            if i < tokens.len() && matches!(tokens[i], Tok::Comma) {
                i += 1;
                continue;
            }
            break;
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An unquoted word (lower-cased) or a quoted identifier (as written).
    Word(String),
    Quoted(String),
    Dot,
    Comma,
    /// Anything else (punctuation, literals).
    Other,
}

fn is_table_keyword(w: &str) -> bool {
    matches!(w, "from" | "join" | "update" | "into" | "table")
}

/// Words that end a `FROM` list item.
fn is_clause(w: &str) -> bool {
    matches!(
        w,
        "where" | "join" | "on" | "group" | "order" | "limit" | "set" | "returning" | "values"
    )
}

/// A possibly schema-qualified name at `i`: its last part, and the index after it.
fn qualified_name(tokens: &[Tok], mut i: usize) -> Option<(String, usize)> {
    if matches!(tokens.get(i), Some(Tok::Word(w)) if w == "only" || w == "lateral") {
        i += 1;
    }
    let mut name = part(tokens.get(i)?)?;
    i += 1;
    while matches!(tokens.get(i), Some(Tok::Dot)) {
        name = part(tokens.get(i + 1)?)?;
        i += 2;
    }
    Some((name, i))
}

fn part(t: &Tok) -> Option<String> {
    match t {
        Tok::Word(w)
            if !is_clause(w) && !matches!(w.as_str(), "select" | "of" | "nowait" | "skip") =>
        {
            Some(w.clone())
        }
        Tok::Quoted(q) => Some(q.clone()),
        _ => None,
    }
}

fn lex(sql: &str) -> Vec<Tok> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i = match c {
            '-' if chars.get(i + 1) == Some(&'-') => skip_until(&chars, i, "\n"),
            '/' if chars.get(i + 1) == Some(&'*') => skip_until(&chars, i + 2, "*/"),
            '\'' => {
                out.push(Tok::Other);
                skip_quoted(&chars, i, '\'')
            }
            '"' => {
                let end = skip_quoted(&chars, i, '"');
                let inner: String = chars[i + 1..end.saturating_sub(1).max(i + 1)]
                    .iter()
                    .collect();
                out.push(Tok::Quoted(inner.replace("\"\"", "\"")));
                end
            }
            '.' => {
                out.push(Tok::Dot);
                i + 1
            }
            ',' => {
                out.push(Tok::Comma);
                i + 1
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                let mut j = i;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '$')
                {
                    j += 1;
                }
                let w: String = chars[start..j].iter().collect();
                out.push(Tok::Word(w.to_lowercase()));
                j
            }
            c if c.is_whitespace() => i + 1,
            _ => {
                out.push(Tok::Other);
                i + 1
            }
        };
    }
    out
}

/// The index just after the next `end` at or after `i` (or the end).
fn skip_until(chars: &[char], i: usize, end: &str) -> usize {
    let end: Vec<char> = end.chars().collect();
    let mut j = i;
    while j < chars.len() {
        if chars[j..].starts_with(&end) {
            return j + end.len();
        }
        j += 1;
    }
    chars.len()
}

/// The index just after the quote closing the one at `i` (doubled quotes
/// inside are part of the text).
fn skip_quoted(chars: &[char], i: usize, q: char) -> usize {
    let mut j = i + 1;
    while j < chars.len() {
        if chars[j] == q {
            if chars.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    chars.len()
}

#[cfg(test)]
mod tests {
    use super::tables_of;

    #[test]
    fn names_after_from_join_update_into() {
        assert_eq!(tables_of("select 1"), Vec::<String>::new());
        assert_eq!(tables_of("UPDATE carts SET n = 1"), ["carts"]);
        assert_eq!(tables_of("insert into s.log (a) values (1)"), ["log"]);
        assert_eq!(
            tables_of("SELECT * FROM a, b AS bb, c WHERE 1=1"),
            ["a", "b", "c"]
        );
        assert_eq!(
            tables_of("select * from a left join b on true join only c on true"),
            ["a", "b", "c"]
        );
        assert_eq!(
            tables_of("DELETE FROM t WHERE x IN (SELECT y FROM u)"),
            ["t", "u"]
        );
        assert_eq!(tables_of("TRUNCATE TABLE big"), ["big"]);
        assert_eq!(tables_of("select * from t for update"), ["t"]);
        assert_eq!(
            tables_of("insert into t (a) values (1) on conflict (a) do update set a = 2"),
            ["t"]
        );
    }

    #[test]
    fn literals_and_comments_hide_nothing_and_invent_nothing() {
        assert_eq!(tables_of("select 'from x' from y -- from z"), ["y"]);
        assert_eq!(
            tables_of("/* join q */ select * from \"My\"\"T\""),
            ["My\"T"]
        );
        assert_eq!(tables_of("select * from a, "), ["a"]);
        assert_eq!(tables_of("from"), Vec::<String>::new());
    }
}
