//! Sending over SMTP with lettre's pooled async transport.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tracing::Instrument;

use super::templates::Rendered;
use crate::{Error, Result};

/// Longest wait for one reply of the SMTP server.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a whole conversation about one message may take (connect, envelope, data).
pub(crate) const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// An SMTP client with a connection pool.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// `url` is `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://user:password@host` (TLS); `from` is a mailbox such as `Orion <orders@example.com>`.
    pub fn new(url: &str, from: &str) -> Result<Mailer> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| Error::Config(format!("invalid SMTP URL: {e}")))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let from = from
            .parse()
            .map_err(|e| Error::Config(format!("invalid sender {from:?}: {e}")))?;
        Ok(Mailer { transport, from })
    }

    /// Sends one email with a plain-text and an HTML part. `message_id` is stable for a delivery,
    /// so a receiving system can recognise a resend of the same email. The send is a span of the
    /// trace `traceparent` names (the message that asked for the email).
    pub async fn send(
        &self,
        to: &str,
        message_id: &str,
        email: &Rendered,
        traceparent: Option<&str>,
    ) -> Result<()> {
        let span = tracing::info_span!(
            "send email",
            otel.kind = "client",
            email.message_id = message_id,
            error.type = tracing::field::Empty,
        );
        orion_telemetry::propagation::set_parent(&span, traceparent);
        let sent = self
            .send_now(to, message_id, email)
            .instrument(span.clone())
            .await;
        if sent.is_err() {
            span.record("error.type", "smtp");
        }
        sent
    }

    async fn send_now(&self, to: &str, message_id: &str, email: &Rendered) -> Result<()> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| Error::Mail(format!("invalid recipient: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.as_str())
            .message_id(Some(format!("<{message_id}>")))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| Error::Mail(format!("cannot build the message: {e}")))?;
        tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message))
            .await
            .map_err(|_| {
                Error::Mail(format!(
                    "the SMTP server did not finish within {} s",
                    SEND_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| Error::Mail(e.to_string()))?;
        Ok(())
    }
}
