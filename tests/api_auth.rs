//! Accounts and tokens over HTTP.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::{ADMIN, CUSTOMER, JWT_SECRET, TestApi, expect_problem};

#[sqlx::test(migrations = false)]
async fn register_login_and_me(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let body = json!({"email": "  Grace@Example.COM ", "password": "a fine long password", "name": "Grace"});
    let response = api
        .post("/api/auth/register", None, &body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.unwrap();
    assert_eq!(
        (
            user["email"].as_str(),
            user["role"].as_str(),
            user["name"].as_str()
        ),
        (Some("grace@example.com"), Some("customer"), Some("Grace"))
    );
    assert!(user.get("password_hash").is_none());

    let tokens = api
        .login(("grace@example.com", "a fine long password"))
        .await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let me: Value = api
        .get("/api/auth/me", tokens["access_token"].as_str())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me, user);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn registration_is_validated(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": "a fine long password", "name": "X"}),
            "email",
        ),
        (
            json!({"email": "x@example.com", "password": "short", "name": "X"}),
            "password",
        ),
        (
            json!({"email": "x@example.com", "password": "aaaaaaaaaaaa", "name": "X"}),
            "password",
        ),
        (
            json!({"email": "x@example.com", "password": "a fine long password", "name": "  "}),
            "name",
        ),
        (
            json!({"email": "x@example.com", "password": "a fine long password", "name": "X", "role": "admin"}),
            "body",
        ),
        (json!({"email": "x@example.com", "name": "X"}), "body"),
    ];
    for (body, field) in cases {
        let problem = expect_problem(
            api.post("/api/auth/register", None, &body)
                .send()
                .await
                .unwrap(),
            422,
            "validation-error",
        )
        .await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn unknown_email_and_wrong_password_get_the_same_answer(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let api = TestApi::spawn(&options).await;
    let wrong = api
        .post(
            "/api/auth/login",
            None,
            &json!({"email": CUSTOMER.0, "password": "wrong password!"}),
        )
        .send()
        .await
        .unwrap();
    let unknown = api
        .post(
            "/api/auth/login",
            None,
            &json!({"email": "nobody@example.com", "password": "wrong password!"}),
        )
        .send()
        .await
        .unwrap();
    let garbage = api
        .post(
            "/api/auth/login",
            None,
            &json!({"email": "not an email", "password": "x"}),
        )
        .send()
        .await
        .unwrap();
    let wrong = expect_problem(wrong, 401, "unauthorized").await;
    let unknown = expect_problem(unknown, 401, "unauthorized").await;
    let garbage = expect_problem(garbage, 401, "unauthorized").await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, garbage);
    api.stop().await;
}

#[sqlx::test(migrations = false)]
async fn refresh_rotates_and_reuse_revokes_the_family(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let first = api.login(CUSTOMER).await;
    let refresh = |token: &Value| {
        api.post("/api/auth/refresh", None, &json!({"refresh_token": token}))
            .send()
    };

    let second: Value = refresh(&first["refresh_token"])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(
        api.get("/api/auth/me", second["access_token"].as_str())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The first token again: reuse. It is refused and takes the newer token down with it.
    expect_problem(
        refresh(&first["refresh_token"]).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_problem(
        refresh(&second["refresh_token"]).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;
    expect_problem(
        refresh(&json!("made-up")).await.unwrap(),
        401,
        "unauthorized",
    )
    .await;

    // Another login is another family, unaffected.
    let other = api.login(CUSTOMER).await;
    assert_eq!(
        refresh(&other["refresh_token"]).await.unwrap().status(),
        200
    );
    api.stop().await;
}

fn sign(header: &Value, claims: &Value, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let signing_input = format!("{}.{}", encode(header), encode(claims));
    let signature = if header["alg"] == "HS512" {
        let mut mac = Hmac::<sha2::Sha512>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signing_input.as_bytes());
        mac.finalize().into_bytes().to_vec()
    } else {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signing_input.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[sqlx::test(migrations = false)]
async fn bad_tokens_are_refused_with_www_authenticate(_: PgPoolOptions, options: PgConnectOptions) {
    let api = TestApi::spawn(&options).await;
    let me: Value = api
        .get("/api/auth/me", Some(&api.token(ADMIN).await))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |exp: i64, aud: &str, iss: &str| json!({"sub": me["id"], "role": "admin", "iat": now - 10, "exp": exp, "iss": iss, "aud": aud, "jti": uuid::Uuid::now_v7()});
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let valid = sign(&hs256, &claims(now + 300, "orion-api", "orion"), JWT_SECRET);
    assert_eq!(
        api.get("/api/auth/me", Some(&valid))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "the forging helper is right"
    );

    let unsigned_payload = valid.split('.').nth(1).unwrap();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("not-a-jwt".into())),
        (
            "expired",
            Some(sign(
                &hs256,
                &claims(now - 60, "orion-api", "orion"),
                JWT_SECRET,
            )),
        ),
        (
            "wrong signature",
            Some(sign(
                &hs256,
                &claims(now + 300, "orion-api", "orion"),
                "some-other-secret-of-enough-length",
            )),
        ),
        (
            "alg none",
            Some(format!(
                "{}.{unsigned_payload}.",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#)
            )),
        ),
        (
            "alg HS512",
            Some(sign(
                &json!({"alg": "HS512", "typ": "JWT"}),
                &claims(now + 300, "orion-api", "orion"),
                JWT_SECRET,
            )),
        ),
        (
            "wrong audience",
            Some(sign(
                &hs256,
                &claims(now + 300, "someone-else", "orion"),
                JWT_SECRET,
            )),
        ),
        (
            "wrong issuer",
            Some(sign(
                &hs256,
                &claims(now + 300, "orion-api", "evil"),
                JWT_SECRET,
            )),
        ),
    ];
    for (case, token) in cases {
        let mut request = api.request(Method::GET, "/api/auth/me");
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let challenge = response.headers().get("www-authenticate").cloned();
        expect_problem(response, 401, "unauthorized").await;
        assert_eq!(
            challenge.as_ref().and_then(|v| v.to_str().ok()),
            Some(r#"Bearer realm="orion""#),
            "{case}"
        );
    }
    let scheme = api
        .request(Method::GET, "/api/auth/me")
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    expect_problem(scheme, 401, "unauthorized").await;
    api.stop().await;
}
