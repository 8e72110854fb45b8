"""An integrator's first steps with the Python client generated from Orion's OpenAPI document.

    python client_roundtrip.py <folder holding the generated package> <package name> <base URL>
        <email> <password> [<sku>]

The package is what `openapi-python-client generate --meta none` writes. Through it alone, this
signs in, places an order of one unit of `sku` (SKU-1 by default) with an Idempotency-Key, places
it again with the same key (the same order must come back), reads it back and checks the typed
fields: the statuses are members of the generated enum, the ids match, money is integer minor
units. On success it prints one JSON line:
{"order_id", "status", "failure_reason", "total": {"amount", "currency"}, "replayed_id",
"items": [{"sku", "quantity"}]}. On any failure it prints the reason to stderr and exits 1.
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from typing import Any


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)


def expect(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def main(argv: list[str]) -> None:
    if len(argv) not in (5, 6):
        fail(__doc__ or "usage: client_roundtrip.py <dir> <package> <url> <email> <password> [sku]")
    folder, package, base_url, email, password = argv[:5]
    sku = argv[5] if len(argv) == 6 else "SKU-1"
    sys.path.insert(0, folder)

    def module(name: str) -> Any:
        return importlib.import_module(f"{package}.{name}")

    client_module = module("client")
    sign_in = module("api.auth.sign_in")
    place_order = module("api.orders.place_order")
    get_order = module("api.orders.get_order")
    models = module("models")
    types = module("types")

    with client_module.Client(base_url=base_url, raise_on_unexpected_status=True) as anonymous:
        signed_in = sign_in.sync_detailed(
            client=anonymous,
            body=models.LoginRequest(email=email, password=password),
        )
    tokens = signed_in.parsed
    expect(
        signed_in.status_code == 200 and isinstance(tokens, models.TokenResponse),
        f"sign_in answered {signed_in.status_code}: {signed_in.content!r}",
    )
    expect(tokens.token_type == "Bearer", f"token_type {tokens.token_type!r}")
    expect(isinstance(tokens.expires_in, int), f"expires_in {tokens.expires_in!r}")

    with client_module.AuthenticatedClient(
        base_url=base_url, token=tokens.access_token, raise_on_unexpected_status=True
    ) as client:
        request = models.PlaceOrderRequest(
            items=[models.PlaceOrderLine(sku=sku, quantity=1)],
            payment_token="tok_visa",
        )
        key = str(uuid.uuid4())
        placed = place_order.sync_detailed(client=client, body=request, idempotency_key=key)
        accepted = placed.parsed
        expect(
            placed.status_code == 202 and isinstance(accepted, models.OrderResponse),
            f"place_order answered {placed.status_code}: {placed.content!r}",
        )
        expect(
            placed.headers.get("location", "").endswith(str(accepted.id)),
            f"Location {placed.headers.get('location')!r} for order {accepted.id}",
        )
        # A retry with the same key and body, as after a lost answer, finds the same order.
        replayed = place_order.sync_detailed(client=client, body=request, idempotency_key=key)
        expect(
            replayed.status_code == 202 and isinstance(replayed.parsed, models.OrderResponse),
            f"the replayed place_order answered {replayed.status_code}: {replayed.content!r}",
        )
        expect(
            replayed.parsed.id == accepted.id,
            f"the same Idempotency-Key gave order {replayed.parsed.id}, not {accepted.id}",
        )
        expect(
            replayed.headers.get("idempotent-replayed") == "true",
            f"the replay is not marked Idempotent-Replayed: {dict(replayed.headers)!r}",
        )

        read = get_order.sync_detailed(client=client, id=accepted.id)
        order = read.parsed
        expect(
            read.status_code == 200 and isinstance(order, models.OrderResponse),
            f"get_order answered {read.status_code}: {read.content!r}",
        )

    expect(isinstance(order.id, uuid.UUID) and order.id == accepted.id, f"id {order.id!r}")
    expect(isinstance(order.customer_id, uuid.UUID), f"customer_id {order.customer_id!r}")
    expect(isinstance(order.status, models.StatusName), f"status {order.status!r}")
    expect(isinstance(accepted.status, models.StatusName), f"status {accepted.status!r}")
    reason = order.failure_reason
    expect(
        reason is None or isinstance(reason, (models.FailureReasonName, types.Unset)),
        f"failure_reason {reason!r}",
    )
    expect(
        isinstance(order.total, models.MoneyBody)
        and isinstance(order.total.amount, int)
        and order.total.amount > 0,
        f"total {order.total!r}",
    )
    expect(len(order.items) == 1, f"items {order.items!r}")
    line = order.items[0]
    expect(
        line.sku == sku and line.quantity == 1 and line.unit_price.amount == order.total.amount,
        f"line {line!r} of total {order.total!r}",
    )
    expect(order.created_at <= order.updated_at, f"{order.created_at} after {order.updated_at}")

    known_reason = reason.value if isinstance(reason, models.FailureReasonName) else None
    print(
        json.dumps(
            {
                "order_id": str(order.id),
                "status": order.status.value,
                "failure_reason": known_reason,
                "total": {"amount": order.total.amount, "currency": order.total.currency},
                "replayed_id": str(replayed.parsed.id),
                "items": [{"sku": line.sku, "quantity": line.quantity}],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
