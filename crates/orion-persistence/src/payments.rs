//! Payments: one row per order with the provider's answer, so a void knows what to void and the
//! timeline can show it.

use orion_domain::{Currency, Money, OrderId};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Error, Result};

/// A provider's answer for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: OrderId,
    pub provider: String,
    pub status: PaymentStatus,
    pub amount: Money,
    pub authorization_id: Option<String>,
    pub decline_reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Authorized,
    Declined,
    Voided,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authorized => "authorized",
            Self::Declined => "declined",
            Self::Voided => "voided",
        }
    }

    fn parse(raw: &str) -> Result<Self> {
        match raw {
            "authorized" => Ok(Self::Authorized),
            "declined" => Ok(Self::Declined),
            "voided" => Ok(Self::Voided),
            other => Err(Error::corrupt("payments", format!("status {other:?}"))),
        }
    }
}

/// Records the provider's answer. Returns false when the order already has one (a duplicate
/// reply): the first answer stands.
pub async fn record_payment(conn: &mut PgConnection, payment: &Payment) -> Result<bool> {
    let currency = payment.amount.currency();
    let inserted = sqlx::query!(
        r#"insert into payments (id, order_id, provider, status, amount, currency, authorization_id, decline_reason)
           values ($1, $2, $3, $4, $5, $6, $7, $8)
           on conflict on constraint payments_order_uq do nothing"#,
        payment.id,
        payment.order_id.as_uuid(),
        payment.provider,
        payment.status.as_str(),
        payment.amount.amount(),
        currency.as_str(),
        payment.authorization_id,
        payment.decline_reason,
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The order's payment, if the provider has answered.
pub async fn find_payment(conn: &mut PgConnection, order_id: OrderId) -> Result<Option<Payment>> {
    let row = sqlx::query!(
        r#"select id, provider, status, amount, currency, authorization_id, decline_reason
           from payments where order_id = $1"#,
        order_id.as_uuid(),
    )
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(Payment {
            id: r.id,
            order_id,
            provider: r.provider,
            status: PaymentStatus::parse(&r.status)?,
            amount: Money::new(r.amount, Currency::parse(&r.currency)?)?,
            authorization_id: r.authorization_id,
            decline_reason: r.decline_reason,
        })
    })
    .transpose()
}

/// Marks an authorized payment voided; returns it, or `None` when there was nothing to void.
pub async fn mark_voided(conn: &mut PgConnection, order_id: OrderId) -> Result<Option<Payment>> {
    let voided = sqlx::query_scalar!(
        r#"update payments set status = 'voided', updated_at = now()
           where order_id = $1 and status = 'authorized'
           returning id"#,
        order_id.as_uuid(),
    )
    .fetch_optional(&mut *conn)
    .await?;
    match voided {
        Some(_) => find_payment(conn, order_id).await,
        None => Ok(None),
    }
}
