-- Every transaction that moved an order used to update the same few `sales_stats` rows (one per
-- status and currency), so all of them, placements included, waited for each other on those rows.
-- Now each writes its change as new rows here, which takes no lock another transaction waits for;
-- the worker folds the changes into the totals every second, and `sales_stats` (now a view) adds
-- the changes not folded yet, so a reader still sees every committed change at once.
ALTER TABLE sales_stats RENAME TO sales_stats_folded;
ALTER TABLE sales_stats_folded RENAME CONSTRAINT sales_stats_pk TO sales_stats_folded_pk;
-- A fold may carry a status's decrements without its increments (folded earlier, or by another
-- worker at the same moment), so a folded row can dip below zero until the next fold; the sums
-- the view shows cannot.
ALTER TABLE sales_stats_folded DROP CONSTRAINT sales_stats_count_ck;
ALTER TABLE sales_stats_folded DROP CONSTRAINT sales_stats_amount_ck;

CREATE TABLE sales_stats_changes (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    currency     text   NOT NULL,
    status       text   NOT NULL,
    order_count  bigint NOT NULL,
    total_amount bigint NOT NULL,
    CONSTRAINT sales_stats_changes_pk PRIMARY KEY (seq)
);

CREATE VIEW sales_stats AS
SELECT currency, status, sum(order_count)::bigint AS order_count,
       sum(total_amount)::bigint AS total_amount
FROM (
    SELECT currency, status, order_count, total_amount FROM sales_stats_folded
    UNION ALL
    SELECT currency, status, order_count, total_amount FROM sales_stats_changes
) AS all_changes
GROUP BY currency, status;
