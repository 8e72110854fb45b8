use orion_domain::Email;
use orion_persistence::users::{self, NewUser};
use orion_persistence::{Error, MIGRATOR, Pool};
use uuid::Uuid;

#[sqlx::test(migrator = "MIGRATOR")]
async fn emails_are_unique_and_a_duplicate_is_a_typed_error(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    let email = Email::parse("Ada@Example.com").unwrap();
    let new = |id| NewUser {
        id,
        email: &email,
        name: "Ada",
        password_hash: "hash",
        role: "customer",
    };
    let created = users::insert_user(&mut conn, &new(Uuid::now_v7()))
        .await
        .unwrap();
    assert_eq!(created.email, "ada@example.com");

    let error = users::insert_user(&mut conn, &new(Uuid::now_v7()))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::DuplicateEmail), "{error}");
    assert!(
        !users::ensure_user(&mut conn, &new(Uuid::now_v7()))
            .await
            .unwrap()
    );

    let found = users::find_user_by_email(&mut conn, &Email::parse("ADA@example.com").unwrap())
        .await
        .unwrap();
    assert_eq!(found.map(|u| u.id), Some(created.id));
    assert!(
        users::find_user(&mut conn, Uuid::now_v7())
            .await
            .unwrap()
            .is_none()
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn roles_are_checked_by_the_database(pool: Pool) {
    let mut conn = pool.acquire().await.unwrap();
    let email = Email::parse("root@example.com").unwrap();
    let error = users::insert_user(
        &mut conn,
        &NewUser {
            id: Uuid::now_v7(),
            email: &email,
            name: "Root",
            password_hash: "hash",
            role: "superuser",
        },
    )
    .await
    .unwrap_err();
    assert_eq!(error.constraint(), Some("users_role_ck"));
}
