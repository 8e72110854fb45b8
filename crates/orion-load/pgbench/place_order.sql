-- The SQL transaction of `POST /api/orders` (one line, no Idempotency-Key), statement for
-- statement, for pgbench: the database-only ceiling to compare the API's throughput with.
-- Run with: pgbench -M prepared -D customer=<a user id> -f place_order.sql
\set n random(1, 11)
BEGIN;
SELECT gen_random_uuid() AS order_id, gen_random_uuid() AS event_id \gset
SELECT sku, name, price_amount, currency, available, reserved, shipped, received, low_stock_threshold, version
  FROM inventory_items WHERE sku = ANY(ARRAY['SKU-' || :n::int]) ORDER BY sku;
INSERT INTO orders (id, customer_id, status, failure_reason, total_amount, currency, payment_token, version, created_at, updated_at)
  VALUES (:order_id::uuid, :customer::uuid, 'pending', NULL, 1999, 'USD', 'tok_visa', 1, now(), now());
INSERT INTO order_items (order_id, line_no, sku, name, quantity, unit_price_amount, currency)
  SELECT :order_id::uuid, * FROM unnest(ARRAY[1], ARRAY['SKU-' || :n::int], ARRAY['Orion T-shirt'], ARRAY[1], ARRAY[1999::int8], ARRAY['USD']);
INSERT INTO outbox (id, aggregate_type, aggregate_id, event_type, payload, headers, created_at)
  VALUES (:event_id::uuid, 'order', :order_id::uuid, 'order.placed',
          jsonb_build_object('order_id', :order_id::uuid, 'customer_id', :customer::uuid, 'total', jsonb_build_object('amount', 1999, 'currency', 'USD'),
                             'items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || :n::int, 'name', 'Orion T-shirt', 'quantity', 1,
                                                                           'unit_price', jsonb_build_object('amount', 1999, 'currency', 'USD'))),
                             'placed_at', now()),
          jsonb_build_object('correlation_id', :order_id::uuid), now());
INSERT INTO event_log (id, aggregate_type, aggregate_id, order_id, event_type, data, correlation_id, causation_id, occurred_at)
  VALUES (:event_id::uuid, 'order', :order_id::uuid, :order_id::uuid, 'order.placed',
          jsonb_build_object('order_id', :order_id::uuid, 'customer_id', :customer::uuid, 'total', jsonb_build_object('amount', 1999, 'currency', 'USD'),
                             'items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || :n::int, 'name', 'Orion T-shirt', 'quantity', 1,
                                                                           'unit_price', jsonb_build_object('amount', 1999, 'currency', 'USD'))),
                             'placed_at', now()),
          :order_id::uuid, NULL, now());
INSERT INTO order_views (order_id, customer_id, status, failure_reason, items, total_amount, currency, created_at, updated_at, version)
  VALUES (:order_id::uuid, :customer::uuid, 'pending', NULL,
          jsonb_build_array(jsonb_build_object('sku', 'SKU-' || :n::int, 'name', 'Orion T-shirt', 'quantity', 1,
                                               'unit_price', jsonb_build_object('amount', 1999, 'currency', 'USD'))),
          1999, 'USD', now(), now(), 1)
  ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, failure_reason = excluded.failure_reason,
      updated_at = excluded.updated_at, version = excluded.version
  WHERE order_views.version < excluded.version;
INSERT INTO sales_stats_changes (currency, status, order_count, total_amount) VALUES ('USD', 'pending', 1, 1999);
COMMIT;
