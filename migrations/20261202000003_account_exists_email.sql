-- The email telling an account's owner that someone tried to register with their address
-- (registration answers the same for a new and an existing email).
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_kind_ck;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_kind_ck CHECK (
    kind IN ('order_received', 'order_confirmed', 'order_failed', 'order_cancelled',
             'order_shipped', 'order_delivered', 'low_stock_alert', 'account_exists')
);
