-- 0001: the dedup index, the function registry, blobs, activations and
-- their totals. Applied once, in a transaction, under the migration lock.

-- One row per dedup key. lease_until NULL on a running claim means no
-- deadline (locked); claims compare it with the server's now().
CREATE TABLE dedupfn_claims (
	key          text COLLATE "C" PRIMARY KEY,
	state        text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
	parts        jsonb NOT NULL,
	owner        text NOT NULL DEFAULT '',
	token        text NOT NULL DEFAULT '',
	lease_until  timestamptz,
	attempt      integer NOT NULL,
	external_id  text NOT NULL DEFAULT '',
	output       jsonb,
	result       bytea, -- the function's JSON result, byte for byte
	function_ms  double precision NOT NULL DEFAULT 0,
	error        text NOT NULL DEFAULT '',
	error_class  text NOT NULL DEFAULT '',
	created      timestamptz NOT NULL,
	updated      timestamptz NOT NULL
);

-- The end of a running claim (completed, failed, released, deleted or
-- taken over) wakes the waiters of its key on every replica. Renewals
-- and new claims notify nobody.
CREATE FUNCTION dedupfn_claim_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('dedupfn_claims', OLD.key);
	RETURN NULL;
END
$$;
CREATE TRIGGER dedupfn_claim_changed AFTER UPDATE ON dedupfn_claims FOR EACH ROW
	WHEN (OLD.state = 'running' AND (NEW.state <> 'running' OR NEW.token <> OLD.token))
	EXECUTE FUNCTION dedupfn_claim_ended();
CREATE TRIGGER dedupfn_claim_deleted AFTER DELETE ON dedupfn_claims FOR EACH ROW
	WHEN (OLD.state = 'running')
	EXECUTE FUNCTION dedupfn_claim_ended();

-- Opaque documents (the function registry), by kind and id.
CREATE TABLE dedupfn_docs (
	kind text COLLATE "C" NOT NULL,
	id   text COLLATE "C" NOT NULL,
	body bytea NOT NULL,
	PRIMARY KEY (kind, id)
);

-- Any change to a document tells the watchers of its kind (WatchDocs).
CREATE FUNCTION dedupfn_doc_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		PERFORM pg_notify('dedupfn_docs', OLD.kind);
	ELSE
		PERFORM pg_notify('dedupfn_docs', NEW.kind);
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER dedupfn_doc_changed AFTER INSERT OR UPDATE OR DELETE ON dedupfn_docs
	FOR EACH ROW EXECUTE FUNCTION dedupfn_doc_changed();

-- Content-addressed bytes (function code), by SHA-256 hex digest.
CREATE TABLE dedupfn_blobs (
	digest text COLLATE "C" PRIMARY KEY,
	data   bytea NOT NULL
);

-- One row per activation; record is the activation.Record as JSON, text
-- kept as written (json, not jsonb). start sorts listings newest first.
CREATE TABLE dedupfn_activations (
	id       text COLLATE "C" PRIMARY KEY,
	tenant   text COLLATE "C" NOT NULL,
	function text COLLATE "C" NOT NULL,
	start    timestamptz NOT NULL,
	bucket   text COLLATE "C" NOT NULL,
	key      text COLLATE "C" NOT NULL,
	etag     text COLLATE "C" NOT NULL,
	record   json NOT NULL
);
CREATE INDEX dedupfn_activations_start ON dedupfn_activations (start DESC, id DESC);
CREATE INDEX dedupfn_activations_tenant ON dedupfn_activations (tenant, start DESC, id DESC);
CREATE INDEX dedupfn_activations_function ON dedupfn_activations (function, start DESC, id DESC);
CREATE INDEX dedupfn_activations_tenant_function ON dedupfn_activations (tenant, function, start DESC, id DESC);
CREATE INDEX dedupfn_activations_object ON dedupfn_activations (bucket, key, etag);

-- Totals of every activation ever added (pruning does not lower them),
-- per tenant, spread over shards so that concurrent replicas do not
-- queue on one row; Stats sums them.
CREATE TABLE dedupfn_stats (
	tenant       text COLLATE "C" NOT NULL,
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
	PRIMARY KEY (tenant, shard)
);
