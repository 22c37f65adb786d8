-- 0002: totals per function. Applied once, in a transaction, under the
-- migration lock.

-- Totals of every activation ever added, per tenant and function, spread
-- over shards like dedupfn_stats (AddActivation adds to both in its one
-- statement); FunctionStats sums them. Pruning does not touch them.
CREATE TABLE dedupfn_function_stats (
	tenant       text COLLATE "C" NOT NULL,
	function     text COLLATE "C" NOT NULL,
	shard        smallint NOT NULL,
	events       bigint NOT NULL DEFAULT 0,
	runs         bigint NOT NULL DEFAULT 0,
	hits         bigint NOT NULL DEFAULT 0,
	waits        bigint NOT NULL DEFAULT 0,
	errors       bigint NOT NULL DEFAULT 0,
	skipped      bigint NOT NULL DEFAULT 0,
	dead_letters bigint NOT NULL DEFAULT 0,
	function_ms  double precision NOT NULL DEFAULT 0,
	saved_ms     double precision NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant, function, shard)
);

-- A database written before this table existed starts it from the
-- activations it still keeps (activation.Stats.Add over each record);
-- pruned ones count in dedupfn_stats only.
INSERT INTO dedupfn_function_stats (tenant, function, shard, events, runs, hits, waits, errors, skipped,
	dead_letters, function_ms, saved_ms)
SELECT tenant, function, 0,
	count(*),
	count(*) FILTER (WHERE record->>'decision' = 'miss'),
	count(*) FILTER (WHERE record->>'decision' IN ('hit', 'wait')),
	count(*) FILTER (WHERE record->>'decision' = 'wait'),
	count(*) FILTER (WHERE record->>'decision' = 'error'),
	count(*) FILTER (WHERE record->>'decision' = 'skipped'),
	count(*) FILTER (WHERE coalesce((record->>'dead_letter')::boolean, false)),
	coalesce(sum((record->>'function_ms')::double precision) FILTER (WHERE record->>'decision' = 'miss'), 0),
	coalesce(sum((record->>'saved_ms')::double precision), 0)
FROM dedupfn_activations
GROUP BY tenant, function;
