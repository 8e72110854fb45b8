//! Email templates: a subject, a plain-text body and an HTML body per kind, rendered by
//! minijinja. Values are HTML-escaped in `.html` templates (minijinja escapes by extension), and
//! a template that refers to a missing value is an error, not an empty string.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::{Error, Result};

pub use orion_persistence::emails::EmailKind;

/// The email an event asks for, if any.
pub(super) fn email_for(event_type: &str) -> Option<EmailKind> {
    Some(match event_type {
        "order.placed" => EmailKind::OrderReceived,
        "order.confirmed" => EmailKind::OrderConfirmed,
        "order.failed" => EmailKind::OrderFailed,
        "order.cancelled" => EmailKind::OrderCancelled,
        "order.shipped" => EmailKind::OrderShipped,
        "order.delivered" => EmailKind::OrderDelivered,
        "inventory.low_stock" => EmailKind::LowStockAlert,
        "account.registration_attempted" => EmailKind::AccountExists,
        "webhook.disabled" => EmailKind::WebhookDisabled,
        _ => return None,
    })
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

const SOURCES: [(&str, &str); 30] = templates![
    "layout.html",
    "order_lines.html",
    "order_lines.txt",
    "order_received.subject.txt",
    "order_received.txt",
    "order_received.html",
    "order_confirmed.subject.txt",
    "order_confirmed.txt",
    "order_confirmed.html",
    "order_failed.subject.txt",
    "order_failed.txt",
    "order_failed.html",
    "order_cancelled.subject.txt",
    "order_cancelled.txt",
    "order_cancelled.html",
    "order_shipped.subject.txt",
    "order_shipped.txt",
    "order_shipped.html",
    "order_delivered.subject.txt",
    "order_delivered.txt",
    "order_delivered.html",
    "low_stock_alert.subject.txt",
    "low_stock_alert.txt",
    "low_stock_alert.html",
    "account_exists.subject.txt",
    "account_exists.txt",
    "account_exists.html",
    "webhook_disabled.subject.txt",
    "webhook_disabled.txt",
    "webhook_disabled.html",
];

/// The compiled templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles every template; fails at startup, not at the first email, if one is broken.
    pub fn load() -> Result<Templates> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in SOURCES {
            env.add_template(name, source)
                .map_err(|e| Error::Template(e.to_string()))?;
        }
        Ok(Templates { env })
    }

    pub fn render(&self, kind: EmailKind, values: &impl Serialize) -> Result<Rendered> {
        let render = |suffix: &str| {
            let name = format!("{}.{suffix}", kind.as_str());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(values))
                .map_err(|e| Error::Template(format!("{name}: {e}")))
        };
        Ok(Rendered {
            subject: render("subject.txt")?.trim().to_owned(),
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn order_values(name: &str) -> serde_json::Value {
        json!({
            "name": name,
            "order_id": "0192f0c2-0000-7000-8000-000000000001",
            "reference": "7C1E0B93A2",
            "order_url": "http://127.0.0.1:8080/orders/0192f0c2",
            "reason": "the payment was declined",
            "total": "12.00 USD",
            "lines": [{"quantity": 2, "name": "Widget <b>", "sku": "SKU-1", "subtotal": "12.00 USD"}],
        })
    }

    #[test]
    fn every_kind_renders_subject_text_and_html() {
        let templates = Templates::load().unwrap();
        for kind in EmailKind::ALL {
            let values = match kind {
                EmailKind::LowStockAlert => {
                    json!({"name": "Ada", "sku": "SKU-1", "item_name": "Widget", "available": 2,
                           "threshold": 5, "admin_url": "http://127.0.0.1:8080/admin"})
                }
                EmailKind::AccountExists => {
                    json!({"name": "Ada", "sign_in_url": "http://127.0.0.1:8080/admin"})
                }
                EmailKind::WebhookDisabled => {
                    json!({"name": "Ada", "url": "https://example.com/hooks",
                           "reason": "it answered 410 Gone", "admin_url": "http://127.0.0.1:8080/admin"})
                }
                _ => order_values("Ada"),
            };
            let email = templates.render(kind, &values).unwrap();
            assert!(
                !email.subject.is_empty() && !email.subject.contains('\n'),
                "{kind:?}"
            );
            assert!(email.text.contains("Ada"), "{kind:?}");
            assert!(email.html.contains("<html"), "{kind:?}");
        }
    }

    #[test]
    fn html_escapes_values_and_text_does_not() {
        let templates = Templates::load().unwrap();
        let email = templates
            .render(
                EmailKind::OrderConfirmed,
                &order_values("<script>alert(1)</script>"),
            )
            .unwrap();
        assert!(!email.html.contains("<script>"));
        assert!(email.html.contains("&lt;script&gt;"));
        assert!(email.html.contains("Widget &lt;b&gt;"));
        assert!(email.text.contains("<script>alert(1)</script>"));
    }

    #[test]
    fn failure_emails_say_why_in_words() {
        let templates = Templates::load().unwrap();
        let email = templates
            .render(EmailKind::OrderFailed, &order_values("Ada"))
            .unwrap();
        assert!(email.text.contains("because the payment was declined"));
    }

    #[test]
    fn a_missing_value_is_an_error() {
        let templates = Templates::load().unwrap();
        assert!(
            templates
                .render(EmailKind::OrderShipped, &json!({"name": "Ada"}))
                .is_err()
        );
    }

    #[test]
    fn events_map_to_kinds() {
        assert_eq!(email_for("order.failed"), Some(EmailKind::OrderFailed));
        assert_eq!(
            email_for("inventory.low_stock"),
            Some(EmailKind::LowStockAlert)
        );
        assert_eq!(email_for("order.reserved"), None);
    }
}
