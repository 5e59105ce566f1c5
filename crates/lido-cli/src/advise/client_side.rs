//! What lido saw from the client: its statement statistics (`lido serve`'s
//! `GET /statements`, or a file written by `StatementStats::to_json`) and
//! the slow-query table `lido.slow_queries`.

use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::db::{col, AdviseError, Db};
use super::stat_statements::fingerprint_of;

/// One statement from lido's own statistics.
#[derive(Debug, Clone, Serialize)]
pub struct LidoStatement {
    /// lido's fingerprint (16 hex digits).
    pub fingerprint: String,
    /// The normalized text.
    pub query: String,
    /// Its class, when the pool has classes.
    pub class: Option<String>,
    /// Calls seen by the client.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Mean latency seen by the client, ms.
    pub mean_ms: f64,
    /// p99 latency seen by the client, ms.
    pub p99_ms: f64,
    /// Total time seen by the client, ms.
    pub total_ms: f64,
}

impl LidoStatement {
    /// Whether this is pg_stat_statements' statement `query` (`fingerprint`).
    pub fn matches(&self, fingerprint: &str, query: &str) -> bool {
        self.fingerprint == fingerprint || fingerprint_of(&self.query) == fingerprint_of(query)
    }
}

/// Reads `--statements`: an `http://` URL or a file.
pub async fn load(source: &str) -> Result<Vec<LidoStatement>, AdviseError> {
    let text = if source.starts_with("http://") {
        http_get(source).await
    } else if source.starts_with("https://") {
        Err("https:// is not supported; use lido serve's http:// address or a file".to_owned())
    } else {
        std::fs::read_to_string(source).map_err(|e| e.to_string())
    }
    .map_err(|e| AdviseError::Usage(format!("--statements {source}: {e}")))?;
    parse(&text).map_err(|e| AdviseError::Usage(format!("--statements {source}: {e}")))
}

/// Parses a statement statistics document (format 1).
pub fn parse(text: &str) -> Result<Vec<LidoStatement>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if doc["format"].as_u64() != Some(1) {
        return Err(format!(
            "unknown statement statistics format {} (this lido reads format 1)",
            doc["format"]
        ));
    }
    let list = doc["statements"]
        .as_array()
        .ok_or("no \"statements\" array")?;
    Ok(list.iter().map(statement).collect())
}

fn statement(v: &Value) -> LidoStatement {
    let s = |k: &str| v[k].as_str().map(str::to_owned);
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    LidoStatement {
        fingerprint: s("fingerprint").unwrap_or_default(),
        query: s("query").unwrap_or_default(),
        class: s("class"),
        calls: v["calls"].as_u64().unwrap_or(0),
        errors: v["errors"].as_u64().unwrap_or(0),
        mean_ms: f("mean_ms"),
        p99_ms: f("p99_ms"),
        total_ms: f("total_ms"),
    }
}

/// A minimal HTTP/1.1 `GET` (`Connection: close`), body as text.
async fn http_get(url: &str) -> Result<String, String> {
    let rest = url.trim_start_matches("http://");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/statements"),
    };
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let io = async {
        let mut s = tokio::net::TcpStream::connect(&addr).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(std::time::Duration::from_secs(30), io)
        .await
        .map_err(|_| "no answer within 30 s".to_owned())?
        .map_err(|e| e.to_string())?;
    body_of(&String::from_utf8_lossy(&raw))
}

/// The body of a raw HTTP response (plain or chunked), if its status is 200.
fn body_of(raw: &str) -> Result<String, String> {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or("malformed HTTP response")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("HTTP answer {status:?}"));
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok(body.to_owned());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "malformed chunked body")?;
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    Ok(out)
}

/// One fingerprint of the slow-query table.
#[derive(Debug, Clone, Serialize)]
pub struct SlowQuery {
    /// lido's fingerprint.
    pub fingerprint: String,
    /// The latest text logged for it.
    pub query: String,
    /// Rows logged.
    pub count: i64,
    /// Mean duration, ms.
    pub mean_ms: f64,
    /// Longest duration, ms.
    pub max_ms: f64,
    /// When it was last logged.
    pub last_logged_at: String,
    /// The findings of its latest plan analysis, as stored.
    pub findings: Value,
}

/// The table's fingerprints by total duration, when the table exists.
pub async fn slow_queries(db: &Db, top: i64) -> Result<Option<Vec<SlowQuery>>, AdviseError> {
    let exists = db
        .rows("SELECT to_regclass('lido.slow_queries') IS NOT NULL", &[])
        .await
        .map_err(AdviseError::Database)?;
    if !exists.first().is_some_and(|r| col(r, 0).unwrap_or(false)) {
        return Ok(None);
    }
    let sql = "SELECT fingerprint, (array_agg(query ORDER BY logged_at DESC))[1], count(*), \
               avg(duration_ms)::float8, max(duration_ms)::float8, max(logged_at)::text, \
               ((array_agg(findings ORDER BY logged_at DESC) FILTER (WHERE findings IS NOT NULL))[1])::text \
               FROM lido.slow_queries GROUP BY fingerprint \
               ORDER BY sum(duration_ms) DESC NULLS LAST LIMIT $1";
    let rows = db
        .rows(sql, &[&top])
        .await
        .map_err(|e| AdviseError::Database(format!("reading lido.slow_queries: {e}")))?;
    let mut out = Vec::new();
    for r in &rows {
        let get_s = |i| col::<Option<String>>(r, i).map(Option::unwrap_or_default);
        let findings = get_s(6).map_err(AdviseError::Database)?;
        out.push(SlowQuery {
            fingerprint: get_s(0).map_err(AdviseError::Database)?,
            query: get_s(1).map_err(AdviseError::Database)?,
            count: col(r, 2).map_err(AdviseError::Database)?,
            mean_ms: col::<Option<f64>>(r, 3)
                .map_err(AdviseError::Database)?
                .unwrap_or(0.0),
            max_ms: col::<Option<f64>>(r, 4)
                .map_err(AdviseError::Database)?
                .unwrap_or(0.0),
            last_logged_at: get_s(5).map_err(AdviseError::Database)?,
            findings: serde_json::from_str(&findings).unwrap_or(Value::Null),
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_format_one_documents() {
        let doc = r#"{"format":1,"statements":[{"fingerprint":"00000000000000ab","query":"SELECT $1",
            "class":null,"calls":3,"errors":0,"rows":3,"total_ms":4.5,"mean_ms":1.5,"p99_ms":3.0}]}"#;
        let s = parse(doc).expect("parses");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].calls, 3);
        assert_eq!(s[0].mean_ms, 1.5);
        assert!(parse(r#"{"format":2,"statements":[]}"#).is_err());
        assert!(parse("nope").is_err());
    }

    #[test]
    fn http_bodies_plain_and_chunked() {
        let plain = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(body_of(plain).as_deref(), Ok("{}"));
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked).as_deref(), Ok("{\"a\":1}"));
        assert!(body_of("HTTP/1.1 404 Not Found\r\n\r\n").is_err());
    }
}
