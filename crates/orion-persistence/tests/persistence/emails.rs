use orion_persistence::emails::{self, DeliveryStatus, EmailKind, NewDelivery};
use orion_persistence::{MIGRATOR, Pool};

/// The table's check and the code's list of kinds are one list: an email kind the database
/// refused would park its event instead of sending it.
#[sqlx::test(migrator = "MIGRATOR")]
async fn the_database_takes_every_kind_of_email(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    for kind in EmailKind::ALL {
        let key = format!("test:{}", kind.as_str());
        let delivery = emails::claim_delivery(
            &mut conn,
            &NewDelivery {
                dedupe_key: &key,
                order_id: None,
                kind: kind.as_str(),
                recipient: "ops@example.com",
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{kind:?} refused: {e}"));
        assert_eq!(delivery.kind, kind.as_str());
        assert_eq!(delivery.status, DeliveryStatus::Pending);
        assert_eq!(EmailKind::parse(kind.as_str()), Some(kind));
    }
    let refused = emails::claim_delivery(
        &mut conn,
        &NewDelivery {
            dedupe_key: "test:unknown",
            order_id: None,
            kind: "birthday_card",
            recipient: "ops@example.com",
        },
    )
    .await;
    assert!(refused.is_err(), "an unknown kind was stored");
}
