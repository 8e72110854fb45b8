//! SignalR's JSON hub protocol, version 1: what `@microsoft/signalr` and the .NET, Java and Swift
//! clients speak once the WebSocket is open.
//!
//! Every message is a JSON object terminated by the record separator `0x1E`; one WebSocket frame
//! may carry several. The first message each way is the handshake; after it, messages have a
//! numeric `type`.

use serde::Deserialize;
use serde_json::Value;

/// Ends every message.
pub(crate) const RECORD_SEPARATOR: char = '\u{1e}';

/// The only protocol spoken here, and its version.
pub(crate) const PROTOCOL: &str = "json";
pub(crate) const VERSION: u32 = 1;

/// The server's handshake answer when it accepts the client's.
pub(crate) const HANDSHAKE_OK: &str = "{}\u{1e}";

/// A keep-alive, sent both ways.
pub(crate) const PING: &str = "{\"type\":6}\u{1e}";

#[derive(Debug, Deserialize)]
struct HandshakeRequest {
    protocol: String,
    version: u32,
}

/// Checks the client's handshake, answering the error to send back when it is refused.
pub(crate) fn check_handshake(record: &str) -> Result<(), String> {
    let request: HandshakeRequest = serde_json::from_str(record)
        .map_err(|_| "the handshake must be {\"protocol\":\"json\",\"version\":1}".to_owned())?;
    if request.protocol != PROTOCOL {
        return Err(format!(
            "the protocol '{}' is not supported; this hub speaks 'json'",
            request.protocol
        ));
    }
    if request.version != VERSION {
        return Err(format!(
            "version {} of the 'json' protocol is not supported; this hub speaks version 1",
            request.version
        ));
    }
    Ok(())
}

/// One message as it goes on the wire: its JSON and the record separator.
fn record(message: &Value) -> String {
    let mut frame = message.to_string();
    frame.push(RECORD_SEPARATOR);
    frame
}

/// The handshake answer refusing the client.
pub(crate) fn handshake_error(error: &str) -> String {
    record(&serde_json::json!({ "error": error }))
}

/// A message from a client after the handshake.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A call of a hub method; answered with an error when the client waits for a result.
    Invocation {
        invocation_id: Option<String>,
        target: String,
    },
    /// Keep-alive.
    Ping,
    /// The client is leaving.
    Close,
    /// Anything else the protocol defines (stream items, cancellations, acks): nothing to do.
    Ignored,
}

/// Parses one record (without its separator).
pub(crate) fn parse(record: &str) -> Result<Incoming, String> {
    let value: Value =
        serde_json::from_str(record).map_err(|_| "a message is not valid JSON".to_owned())?;
    let kind = value
        .get("type")
        .and_then(Value::as_u64)
        .ok_or_else(|| "a message has no numeric `type`".to_owned())?;
    let text = |field: &str| value.get(field).and_then(Value::as_str).map(str::to_owned);
    match kind {
        1 | 4 => Ok(Incoming::Invocation {
            invocation_id: text("invocationId"),
            target: text("target").ok_or_else(|| "an invocation has no `target`".to_owned())?,
        }),
        6 => Ok(Incoming::Ping),
        7 => Ok(Incoming::Close),
        2 | 3 | 5 | 8 | 9 => Ok(Incoming::Ignored),
        other => Err(format!("message type {other} is not part of the protocol")),
    }
}

/// Splits a frame into its records, refusing a frame whose last record is not terminated.
pub(crate) fn records(frame: &str) -> Result<impl Iterator<Item = &str>, String> {
    match frame.strip_suffix(RECORD_SEPARATOR) {
        Some(complete) => Ok(complete.split(RECORD_SEPARATOR)),
        None => Err("a message must end with the record separator 0x1E".to_owned()),
    }
}

/// A server-to-client invocation that expects no answer, with the connection's `sequence`
/// spliced into the (object) argument `payload`.
pub(crate) fn push_invocation(frame: &mut String, target: &str, sequence: u64, payload: &str) {
    use std::fmt::Write as _;
    let rest = payload.strip_prefix('{').unwrap_or("}");
    let separator = if rest == "}" { "" } else { "," };
    // Writing to a String cannot fail.
    let _ = write!(
        frame,
        "{{\"type\":1,\"target\":\"{target}\",\"arguments\":[{{\"sequence\":{sequence}{separator}{rest}]}}{RECORD_SEPARATOR}"
    );
}

/// The answer to an invocation the hub cannot serve.
pub(crate) fn completion_error(invocation_id: &str, error: &str) -> String {
    record(&serde_json::json!({
        "type": 3,
        "invocationId": invocation_id,
        "error": error,
    }))
}

/// The close message: `error` is shown to the client; `allow_reconnect` lets a client with
/// automatic reconnect come back (to this or another replica).
pub(crate) fn close(error: Option<&str>, allow_reconnect: bool) -> String {
    let mut message = serde_json::json!({ "type": 7 });
    if let Some(error) = error {
        message["error"] = error.into();
    }
    if allow_reconnect {
        message["allowReconnect"] = true.into();
    }
    record(&message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_for_json_version_1_only() {
        assert_eq!(
            check_handshake(r#"{"protocol":"json","version":1}"#),
            Ok(())
        );
        assert!(
            check_handshake(r#"{"protocol":"messagepack","version":1}"#)
                .unwrap_err()
                .contains("'messagepack' is not supported")
        );
        assert!(
            check_handshake(r#"{"protocol":"json","version":2}"#)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(check_handshake("not json").is_err());
        assert_eq!(
            handshake_error("nope"),
            "{\"error\":\"nope\"}\u{1e}".to_owned()
        );
    }

    #[test]
    fn parses_what_clients_send() {
        assert_eq!(parse(r#"{"type":6}"#), Ok(Incoming::Ping));
        assert_eq!(parse(r#"{"type":7,"error":null}"#), Ok(Incoming::Close));
        assert_eq!(
            parse(r#"{"type":1,"invocationId":"3","target":"Join","arguments":["x"]}"#),
            Ok(Incoming::Invocation {
                invocation_id: Some("3".into()),
                target: "Join".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":1,"target":"Fire","arguments":[]}"#),
            Ok(Incoming::Invocation {
                invocation_id: None,
                target: "Fire".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":5,"invocationId":"1"}"#),
            Ok(Incoming::Ignored)
        );
        assert!(parse(r#"{"type":42}"#).is_err());
        assert!(parse(r#"{"type":"1"}"#).is_err());
        assert!(parse(r#"{"type":1}"#).is_err());
        assert!(parse("{").is_err());
    }

    #[test]
    fn splits_records_and_refuses_an_unterminated_one() {
        let frame = "{\"type\":6}\u{1e}{\"type\":7}\u{1e}";
        assert_eq!(
            records(frame).unwrap().collect::<Vec<_>>(),
            vec!["{\"type\":6}", "{\"type\":7}"]
        );
        assert!(records("{\"type\":6}").is_err());
    }

    #[test]
    fn invocations_carry_the_sequence_inside_their_argument() {
        let mut frame = String::new();
        push_invocation(
            &mut frame,
            "OrderStatusUpdated",
            7,
            r#"{"orderId":"o","status":"confirmed"}"#,
        );
        push_invocation(&mut frame, "Empty", 8, "{}");
        let messages: Vec<Value> = records(&frame)
            .unwrap()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect();
        assert_eq!(
            messages[0],
            serde_json::json!({"type": 1, "target": "OrderStatusUpdated",
                "arguments": [{"sequence": 7, "orderId": "o", "status": "confirmed"}]})
        );
        assert_eq!(
            messages[1],
            serde_json::json!({"type": 1, "target": "Empty", "arguments": [{"sequence": 8}]})
        );
    }

    #[test]
    fn close_and_completion_messages() {
        assert_eq!(close(None, false), "{\"type\":7}\u{1e}");
        let closing: Value =
            serde_json::from_str(close(Some("bye"), true).trim_end_matches(RECORD_SEPARATOR))
                .unwrap();
        assert_eq!(
            closing,
            serde_json::json!({"type": 7, "error": "bye", "allowReconnect": true})
        );
        let completion: Value = serde_json::from_str(
            completion_error("4", "no such method").trim_end_matches(RECORD_SEPARATOR),
        )
        .unwrap();
        assert_eq!(
            completion,
            serde_json::json!({"type": 3, "invocationId": "4", "error": "no such method"})
        );
    }
}
