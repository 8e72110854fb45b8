//! Entry point for the fuzz targets (`fuzz/`): the API's body, path and query extractors and its
//! request validation, over whatever bytes arrive, with what must hold for every one of them:
//! never a panic, never a 5xx, and every refusal a problem+json. Not an API; no database, so the
//! handlers stop where the real ones would start their transaction.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode, header};
use axum::routing::{get, post};
use orion_auth::Password;
use orion_domain::Email;
use tower::ServiceExt;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::models::{
    CreateItemRequest, LoginRequest, OrderListQuery, PatchItemRequest, PlaceOrderRequest,
    RegisterRequest, RestockRequest,
};
use crate::routes::inventory::{parse_count, parse_money, parse_sku};
use crate::routes::orders::{validate_lines, validate_payment_token};

type Checked = Result<StatusCode, ApiError>;

/// One request made of `data`: a first line `METHOD PATH`, a second line with the
/// `Content-Type`, the rest the body. Panics (failing the fuzz run) if the answer breaks a rule.
pub fn request(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let start = parts.next().unwrap_or_default();
    let content_type = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let mut start = start.splitn(2, |b| *b == b' ');
    let method = start.next().unwrap_or_default();
    let path = start.next().unwrap_or_default();
    // What hyper would refuse before any handler runs is not the extractors' business.
    let Ok(request) = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
    else {
        return;
    };
    let response = runtime()
        .block_on(app().oneshot(request))
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    assert!(!status.is_server_error(), "answered {status}");
    if !status.is_success() {
        assert_eq!(
            response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..]),
            "a {status} that is not problem+json"
        );
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime for the fuzz target: {e}"))
    })
}

/// The API's routes with their real extractors and validation, up to the database.
fn app() -> Router {
    Router::new()
        .route("/api/orders", post(place_order).get(list_orders))
        .route("/api/orders/{id}", get(order))
        .route("/api/orders/{id}/cancel", post(order))
        .route("/api/inventory", post(create_item))
        .route("/api/inventory/{sku}", get(item).patch(patch_item))
        .route("/api/inventory/{sku}/restock", post(restock))
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this resource does not support that method".into())
        })
        .layer(DefaultBodyLimit::max(crate::BODY_LIMIT))
}

async fn place_order(ApiJson(body): ApiJson<PlaceOrderRequest>) -> Checked {
    validate_lines(&body)?;
    validate_payment_token(body.payment_token.as_deref())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_orders(ApiQuery(_query): ApiQuery<OrderListQuery>) -> Checked {
    Ok(StatusCode::NO_CONTENT)
}

async fn order(ApiPath(_id): ApiPath<Uuid>) -> Checked {
    Ok(StatusCode::NO_CONTENT)
}

async fn item(ApiPath(sku): ApiPath<String>) -> Checked {
    parse_sku(&sku)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_item(ApiJson(body): ApiJson<CreateItemRequest>) -> Checked {
    parse_sku(&body.sku)?;
    crate::routes::display_name("name", &body.name)?;
    parse_money("price", &body.price)?;
    parse_count("available", body.available)?;
    parse_count("low_stock_threshold", body.low_stock_threshold)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn patch_item(
    ApiPath(sku): ApiPath<String>,
    ApiJson(body): ApiJson<PatchItemRequest>,
) -> Checked {
    parse_sku(&sku)?;
    if let Some(name) = &body.name {
        crate::routes::display_name("name", name)?;
    }
    if let Some(price) = &body.price {
        parse_money("price", price)?;
    }
    if let Some(threshold) = body.low_stock_threshold {
        parse_count("low_stock_threshold", threshold)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn restock(ApiPath(sku): ApiPath<String>, ApiJson(body): ApiJson<RestockRequest>) -> Checked {
    parse_sku(&sku)?;
    parse_count("quantity", body.quantity)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn register(ApiJson(body): ApiJson<RegisterRequest>) -> Checked {
    Email::parse(&body.email).map_err(|e| ApiError::field("email", e.to_string()))?;
    crate::routes::display_name("name", &body.name)?;
    Password::parse(&body.password)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn login(ApiJson(body): ApiJson<LoginRequest>) -> Checked {
    let _ = Email::parse(&body.email);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeds of the committed corpus pass, so the fuzz run starts from valid ground.
    #[test]
    fn well_formed_and_malformed_requests_keep_the_rules() {
        for seed in [
            &b"POST /api/orders\napplication/json\n{\"items\":[{\"sku\":\"SKU-1\",\"quantity\":2}]}"[..],
            b"POST /api/orders\napplication/json\n{\"items\":[{\"sku\":\"\",\"quantity\":-1}]}",
            b"POST /api/orders\ntext/plain\nnot json",
            b"GET /api/orders/not-a-uuid\n\n",
            b"GET /api/orders?limit=abc&status=%ff\n\n",
            b"PATCH /api/inventory/%00\napplication/json\n{\"price\":{\"amount\":1e99}}",
            b"POST /api/auth/register\napplication/json\n{\"email\":\"x\",\"password\":\"\",\"name\":\"\\u0000\"}",
            b"BREW /api/inventory\n\n",
        ] {
            request(seed);
        }
    }
}
