-- The relay claims a row only when no earlier row of its aggregate is unpublished. Without this
-- index that check scans every unpublished row for every candidate, so a backlog made claiming
-- slower the larger it grew (over a second a batch at a few thousand rows).
CREATE INDEX outbox_unpublished_aggregate_ix ON outbox (aggregate_id, seq) WHERE published_at IS NULL;
