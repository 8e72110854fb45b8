"""Checks one webhook delivery as a receiver would, with the Standard Webhooks reference library.

Reads one JSON object from stdin:
    {"secret": "whsec_...", "headers": {"webhook-id": ..., "webhook-timestamp": ...,
     "webhook-signature": ...}, "body": "<the raw body, exactly as received>"}
On a valid signature (and a timestamp within the library's five minutes), prints the parsed body
as one JSON line and exits 0; otherwise prints the library's error (or what is wrong with the
input) and exits 1.
"""

from __future__ import annotations

import json
import sys

from standardwebhooks import Webhook


def main() -> int:
    try:
        delivery = json.load(sys.stdin)
        secret = delivery["secret"]
        headers = delivery["headers"]
        body = delivery["body"]
    except (ValueError, KeyError, TypeError) as error:
        print(f"malformed input: {error!r}")
        return 1
    try:
        payload = Webhook(secret).verify(body, headers)
    except Exception as error:  # noqa: BLE001 - every refusal is reported the same way
        print(f"{type(error).__name__}: {error}")
        return 1
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
