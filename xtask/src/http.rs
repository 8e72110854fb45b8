//! Minimal HTTP/1.0 over a TCP stream: enough for health probes and one login, without an HTTP
//! client dependency in the build tool.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// `GET path` answers 200.
pub(crate) fn get_ok(address: &str, path: &str) -> bool {
    request(address, "GET", path, None).is_ok_and(|(status, _)| status == 200)
}

/// `POST path` with a JSON body; returns the JSON answer of a 200.
pub(crate) fn post_json(
    address: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value> {
    let (status, text) = request(address, "POST", path, Some(&body.to_string()))?;
    if status != 200 {
        bail!("POST {path} answered {status}: {text}");
    }
    serde_json::from_str(&text).context("the answer is not JSON")
}

fn request(address: &str, method: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    request_as(address, method, path, None, body)
}

/// A request with HTTP basic authentication (`user`, `password`); the status and the body.
pub(crate) fn request_authenticated(
    address: &str,
    method: &str,
    path: &str,
    (user, password): (&str, &str),
) -> Result<(u16, String)> {
    use base64::Engine as _;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    request_as(address, method, path, Some(&credentials), None)
}

fn request_as(
    address: &str,
    method: &str,
    path: &str,
    basic: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or_default();
    let authorization = basic.map_or_else(String::new, |b| format!("Authorization: Basic {b}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no HTTP status")?;
    let mut rest = String::new();
    reader.read_to_string(&mut rest)?;
    let text = rest
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, text))
}
