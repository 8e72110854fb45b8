//! Admin-only reads and API key management.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orion_auth::{Scope, secret_hash};
use orion_persistence::credentials::{self, ApiKeyRecord, NewApiKey};
use orion_persistence::read_models;
use uuid::Uuid;

use super::connection;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, Auth};
use crate::models::{
    ApiKeyCreated, ApiKeyList, ApiKeyResponse, CreateApiKeyRequest, LowStockEntry, MoneyBody,
    StatsResponse, StatusCount,
};
use crate::{AppState, api_keys};

/// Statuses whose orders count as revenue.
const REVENUE_STATUSES: [&str; 3] = ["confirmed", "shipped", "delivered"];

/// Sales figures from the `sales_stats` read model, and the items running low.
#[utoipa::path(get, path = "/api/admin/stats", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Orders by status, revenue, low-stock items", body = StatsResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn stats(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<StatsResponse>, ApiError> {
    auth.require_admin()?;
    let mut conn = connection(&state.pool).await?;
    let rows = read_models::sales_stats(&mut conn).await?;
    let low = read_models::low_stock_items(&mut conn).await?;
    let mut revenue: Vec<MoneyBody> = Vec::new();
    for row in rows
        .iter()
        .filter(|r| REVENUE_STATUSES.contains(&r.status.as_str()))
    {
        match revenue.iter_mut().find(|m| m.currency == row.currency) {
            Some(total) => total.amount = total.amount.saturating_add(row.total_amount),
            None => revenue.push(MoneyBody {
                amount: row.total_amount,
                currency: row.currency.clone(),
            }),
        }
    }
    Ok(Json(StatsResponse {
        orders_by_status: rows
            .into_iter()
            .map(|r| StatusCount {
                status: r.status,
                currency: r.currency,
                count: r.order_count,
                amount: r.total_amount,
            })
            .collect(),
        revenue,
        low_stock: low
            .into_iter()
            .map(|l| LowStockEntry {
                sku: l.sku,
                name: l.name,
                available: l.available,
                low_stock_threshold: l.low_stock_threshold,
            })
            .collect(),
    }))
}

fn key_response(record: ApiKeyRecord) -> ApiKeyResponse {
    ApiKeyResponse {
        id: record.id,
        name: record.name,
        prefix: record.prefix,
        scopes: record.scopes,
        created_at: record.created_at,
        last_used_at: record.last_used_at,
        revoked_at: record.revoked_at,
    }
}

/// Create a scoped API key for an integrator. The key is in this response only.
#[utoipa::path(post, path = "/api/admin/api-keys", tag = "admin",
    security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Created; store `key` now, it is not shown again", body = ApiKeyCreated),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name or scopes", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    auth: Auth,
    ApiJson(body): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    auth.require_admin()?;
    let (admin_id, _) = auth.require_user()?;
    let name = super::display_name("name", &body.name)?;
    if body.scopes.is_empty() {
        return Err(ApiError::field("scopes", "give at least one scope"));
    }
    let mut scopes = Vec::new();
    for (index, raw) in body.scopes.iter().enumerate() {
        let scope = Scope::parse(raw).ok_or_else(|| {
            ApiError::field(
                format!("scopes[{index}]"),
                format!(
                    "unknown scope {raw:?}; expected orders:read, orders:write or inventory:read"
                ),
            )
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    let scopes: Vec<String> = scopes.iter().map(|s| s.as_str().to_owned()).collect();
    let (key, prefix) = api_keys::generate()?;
    let record = credentials::insert_api_key(
        &mut *connection(&state.pool).await?,
        &NewApiKey {
            id: Uuid::now_v7(),
            name,
            prefix: &prefix,
            key_hash: &secret_hash(&key),
            scopes: &scopes,
            created_by: admin_id,
        },
    )
    .await?;
    tracing::info!(api_key.id = %record.id, api_key.prefix = %record.prefix, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            key_info: key_response(record),
            key,
        }),
    ))
}

/// Every API key, without the keys themselves.
#[utoipa::path(get, path = "/api/admin/api-keys", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Keys, newest first", body = ApiKeyList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<ApiKeyList>, ApiError> {
    auth.require_admin()?;
    let records = credentials::list_api_keys(&mut *connection(&state.pool).await?).await?;
    Ok(Json(ApiKeyList {
        items: records.into_iter().map(key_response).collect(),
    }))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/api/admin/api-keys/{id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such active key", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    auth: Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    auth.require_admin()?;
    if credentials::revoke_api_key(&mut *connection(&state.pool).await?, id, crate::now()).await? {
        tracing::info!(api_key.id = %id, "API key revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no active API key {id}")))
    }
}
