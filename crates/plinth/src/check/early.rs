//! A `POST` whose answer may come before its body has gone. A server refusing a body over its
//! limit answers 413 after reading part of it and closes the connection (RFC 9110 allows it);
//! curl hears that answer, but reqwest (hyper) reports only the broken pipe of the rest of the
//! body. So over plain http the request is written on a connection of its own while the answer
//! is read at the same time; over https it goes through the shared client.

use super::Outcome;
use super::http::{Answer, Ctx};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The largest answer read.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// `POST path` with `body` of `content_type`, hearing an answer sent before the body was read.
pub(crate) async fn post(ctx: &Ctx, path: &str, content_type: &str, body: Vec<u8>) -> Result<Answer, Outcome> {
    let url = ctx.url(path)?;
    if url.scheme() != "http" {
        return ctx.send(Method::POST, path, |r| r.header("content-type", content_type).body(body)).await;
    }
    let what = format!("POST {path}");
    let no_answer = |why: String| Outcome::fail(format!("an answer to {what}"), format!("no answer: {why}"));
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let authority = url.port().map_or_else(|| host.clone(), |p| format!("{host}:{p}"));
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\nUser-Agent: plinth-check/{}\r\n",
        body.len(),
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in &crate::client::bearer_headers(ctx.opts.api_key.as_deref()).map_err(no_answer)? {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or_default()));
    }
    head.push_str("\r\n");
    let ip_host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((ip_host, port))
        .await
        .map_err(|e| no_answer(format!("cannot connect to {authority}: {e}")))?;
    let (mut reader, mut writer) = stream.into_split();
    // Why: a write that fails (the server closed after answering) must not stop the reading.
    let write = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        writer.write_all(&body).await?;
        writer.flush().await?;
        Ok::<_, std::io::Error>(writer)
    });
    let answer = read_answer(&mut reader).await;
    write.abort();
    let (status, headers, body) = answer.map_err(no_answer)?;
    Ok(Answer { what, status, headers, body })
}

/// Reads one answer to its end: by Content-Length, chunks, or the connection's close.
async fn read_answer(reader: &mut (impl AsyncRead + Unpin)) -> Result<(u16, HeaderMap, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if let Some(done) = parse(&buf, false)? {
            return Ok(done);
        }
        let read = reader.read(&mut chunk).await;
        let ended = |why: String| {
            parse(&buf, true)?.ok_or_else(|| {
                if buf.is_empty() { format!("{why} before an answer") } else { format!("the answer broke off: {why}") }
            })
        };
        match read {
            Ok(0) => return ended("the server closed the connection".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return ended(format!("the connection broke: {e}")),
        }
        if buf.len() > MAX_ANSWER {
            return Err(format!("the answer is over {MAX_ANSWER} bytes"));
        }
    }
}

/// One HTTP/1.x answer from the bytes so far: `None` while it is incomplete (`eof`: nothing
/// more will come, so an answer without a length ends here). Interim 1xx answers are skipped.
pub(crate) fn parse(buf: &[u8], eof: bool) -> Result<Option<(u16, HeaderMap, Vec<u8>)>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP answer: {}", super::http::excerpt(status_line, 80)))?;
    let rest = &buf[end + 4..];
    if (100..200).contains(&status) {
        return parse(rest, eof);
    }
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_str(value.trim())) {
            headers.append(n, v);
        }
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
    let body = if status == 204 || status == 304 {
        Some(Vec::new())
    } else if text("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = text("content-length") {
        let len: usize = len.trim().parse().map_err(|_| format!("Content-Length: {len}"))?;
        (rest.len() >= len).then(|| rest[..len].to_vec())
    } else {
        eof.then(|| rest.to_vec())
    };
    Ok(body.map(|b| (status, headers, b)))
}

/// A chunked body's data, or `None` while its last chunk has not come.
pub(crate) fn dechunk(data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = data[pos..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&data[pos..pos + eol]);
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| format!("a chunk size that is not hexadecimal: {hex}"))?;
        if size == 0 {
            return Ok(Some(out));
        }
        let start = pos + eol + 2;
        if data.len() < start + size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[start..start + size]);
        pos = start + size + 2;
    }
}
