//! Small helpers shared by the commands.

/// An error with its causes, `: `-separated, each cause once (tokio-postgres
/// keeps the server's message in a source).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// `text` on one line: its non-empty lines, trimmed, joined with `; `.
pub fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join("; ")
}

/// clap's multi-line usage error as one line: the error and its tips, then
/// which `--help` to read (clap's `Usage:` line, else `lido <subcommand>`).
pub fn usage_line(rendered: &str, subcommand: Option<&str>) -> String {
    let mut command = subcommand.map_or_else(|| "lido".to_owned(), |s| format!("lido {s}"));
    let mut parts = Vec::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(usage) = line.strip_prefix("Usage:") {
            let words: Vec<&str> = usage
                .split_whitespace()
                .take_while(|w| !w.starts_with(['[', '<', '-']))
                .collect();
            if !words.is_empty() {
                command = words.join(" ");
            }
        } else if !line.starts_with("For more information") {
            parts.push(line.strip_prefix("error: ").unwrap_or(line));
        }
    }
    format!("{} (see '{command} --help')", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_become_one_line() {
        let rendered = "error: unexpected argument '--jsn' found\n\n  tip: a similar argument exists: '--json'\n\nUsage: lido bench --json\n\nFor more information, try '--help'.\n";
        assert_eq!(
            usage_line(rendered, None),
            "unexpected argument '--jsn' found; tip: a similar argument exists: '--json' (see 'lido bench --help')"
        );
        assert_eq!(
            usage_line(
                "error: invalid value 'x' for '--sizes <SIZES>'\n",
                Some("bench")
            ),
            "invalid value 'x' for '--sizes <SIZES>' (see 'lido bench --help')"
        );
        assert_eq!(one_line("a\n\n  b\n"), "a; b");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn joins_causes() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&e), "outer: inner");
    }
}
