-- 0003: outputs deleted with their inputs (decision "delete"), counted
-- apart from runs and hits. Applied once, in a transaction, under the
-- migration lock. Existing rows start at 0: no activation written before
-- this version is a delete. Replicas of older versions, in a rolling
-- upgrade, name their columns and so leave this one at its default.

ALTER TABLE dedupfn_stats ADD COLUMN IF NOT EXISTS deletes bigint NOT NULL DEFAULT 0;
ALTER TABLE dedupfn_function_stats ADD COLUMN IF NOT EXISTS deletes bigint NOT NULL DEFAULT 0;
