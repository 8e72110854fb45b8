-- Orders are searched by their short reference: the last ten hex digits of the id (the random
-- end of a UUID v7; its start is a timestamp shared by every order of the same minute).
CREATE INDEX order_views_reference_ix
    ON order_views (right(replace(order_id::text, '-', ''), 10));
