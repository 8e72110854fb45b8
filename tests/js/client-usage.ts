// What an integrator writes against the TypeScript client generated from Orion's OpenAPI
// document: sign in, place an order safely retried with an Idempotency-Key, read it back and page
// through the orders. typescript-client.mjs generates the client into `./client/` beside a copy
// of this file and type-checks both with tsconfig.client.json; it is compiled, not run, so a
// change of the document that breaks integrators' code fails the tests.

import { createClient, createConfig } from "./client/client/index.js";
import {
  getOrder,
  listOrders,
  placeOrder,
  signIn,
  type FailureReasonName,
  type MoneyBody,
  type OrderResponse,
  type PlaceOrderRequest,
  type Problem,
  type StatusName,
} from "./client/index.js";

/** Whether an order can still change, decided over the closed list of statuses. */
export function isFinal(status: StatusName): boolean {
  switch (status) {
    case "pending":
    case "reserved":
    case "confirmed":
    case "shipped":
      return false;
    case "delivered":
    case "cancelled":
    case "failed":
      return true;
    default: {
      // A status added to the document without a case here stops the build.
      const unknown: never = status;
      return unknown;
    }
  }
}

/** A failure reason as a person reads it. */
export function explain(reason: FailureReasonName): string {
  switch (reason) {
    case "out_of_stock":
      return "some items are out of stock";
    case "payment_declined":
      return "the payment was declined";
    case "timeout":
      return "a step took too long";
    default: {
      const unknown: never = reason;
      return unknown;
    }
  }
}

/** Money is integer minor units with its currency, never a float. */
export function format(money: MoneyBody): string {
  const amount: number = money.amount;
  const currency: string = money.currency;
  return `${(amount / 100).toFixed(2)} ${currency}`;
}

function describe(problem: Problem): string {
  return `${problem.status} ${problem.type}: ${problem.detail}`;
}

/** Signs in, places one order of `sku`, reads it back and lists the caller's pending orders. */
export async function placeAndFollow(
  baseUrl: string,
  email: string,
  password: string,
  sku: string,
): Promise<OrderResponse> {
  let accessToken: string | undefined;
  const client = createClient(
    createConfig({
      baseUrl,
      // Asked for by every operation whose security names the bearer scheme.
      auth: () => accessToken,
    }),
  );

  const signedIn = await signIn({ client, body: { email, password } });
  if (signedIn.error !== undefined) {
    throw new Error(`sign-in refused: ${describe(signedIn.error)}`);
  }
  const tokens = signedIn.data;
  accessToken = tokens.access_token;
  const expiresIn: number = tokens.expires_in;
  const refreshToken: string = tokens.refresh_token;
  void expiresIn;
  void refreshToken;

  const request: PlaceOrderRequest = {
    items: [{ sku, quantity: 1 }],
    payment_token: "tok_visa",
  };
  // The same key makes a retry after a lost answer return the first order, not a second one.
  const idempotencyKey = crypto.randomUUID();
  const placed = await placeOrder({
    client,
    body: request,
    headers: { "Idempotency-Key": idempotencyKey },
  });
  if (placed.error !== undefined) {
    throw new Error(`order refused: ${describe(placed.error)}`);
  }
  const accepted: OrderResponse = placed.data;
  const location: string | null = placed.response.headers.get("location");
  void location;

  // With throwOnError the result is the data itself; an error answer rejects the promise.
  const { data: order } = await getOrder({
    client,
    path: { id: accepted.id },
    throwOnError: true,
  });
  const status: StatusName = order.status;
  const reason: FailureReasonName | null | undefined = order.failure_reason;
  if (reason !== null && reason !== undefined) {
    console.log(`order ${order.id} failed: ${explain(reason)}`);
  } else if (!isFinal(status)) {
    console.log(`order ${order.id} is ${status}, total ${format(order.total)}`);
  }
  for (const line of order.items) {
    const quantity: number = line.quantity;
    console.log(`${quantity} x ${line.sku} (${line.name}) at ${format(line.unit_price)}`);
  }

  let cursor: string | undefined;
  do {
    const page = await listOrders({
      client,
      query: { status: "pending", limit: 20, ...(cursor === undefined ? {} : { cursor }) },
      throwOnError: true,
    });
    for (const listed of page.data.items) {
      console.log(`${listed.id} ${listed.status} ${listed.created_at}`);
    }
    cursor = page.data.next_cursor ?? undefined;
  } while (cursor !== undefined);

  return order;
}
