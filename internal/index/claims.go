package index

import (
	"context"
	"encoding/json"
	"time"
)

// State of a dedup record.
type State string

// States.
const (
	Running State = "running"
	Done    State = "done"
	Failed  State = "failed" // a cached deterministic failure
)

// Parts are the inputs of a dedup key, stored in the record and
// re-checked on every hit.
type Parts struct {
	Tenant         string `json:"tenant"`
	Function       string `json:"function"`
	CodeDigest     string `json:"code_digest"`
	Params         string `json:"params"` // canonical JSON
	RuntimeVersion string `json:"runtime_version"`
	Fingerprint    string `json:"fingerprint"`
}

// Output is where a completed run's output object lives.
type Output struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	ETag        string `json:"etag"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type,omitempty"`
	// SHA256 is the hex SHA-256 of the output's bytes, taken when it was
	// written: a hit delivers the output only if what it delivered has
	// this SHA-256 (an ETag, an MD5, can be made to collide).
	SHA256 string `json:"sha256,omitempty"`
	// ResultObject is whether the object is the function's JSON result
	// (stored as KEY.json), not an object the function wrote: a hit
	// delivers it under the same rule.
	ResultObject bool `json:"result_object,omitempty"`
}

// Record is the index entry under one dedup key.
type Record struct {
	Key        string    `json:"key"`
	State      State     `json:"state"`
	Parts      Parts     `json:"parts"`
	Owner      string    `json:"owner,omitempty"` // replica id of the running owner
	Token      string    `json:"token,omitempty"` // fencing token of the running owner
	LeaseUntil time.Time `json:"lease_until,omitempty"`
	Attempt    int       `json:"attempt"`
	ExternalID string    `json:"external_id,omitempty"` // remote activation id, recorded as soon as known

	Output     *Output         `json:"output,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	FunctionMS float64         `json:"function_ms,omitempty"` // cost of the run, for "time saved"
	Error      string          `json:"error,omitempty"`
	ErrorClass string          `json:"error_class,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// Outcome of a Claim.
type Outcome int

// Outcomes.
const (
	// Miss: the caller now owns the key (new, or taken over from an expired
	// lease; see Claimed.Record.Attempt) and must run, then Complete, Fail or Release.
	Miss Outcome = iota + 1
	// Hit: the key is Done (or Failed and cached); Record holds the result.
	Hit
	// Wait: another owner holds a live lease (or a lease with no deadline,
	// which counts as locked); poll and claim again later.
	Wait
)

func (o Outcome) String() string {
	switch o {
	case Miss:
		return "miss"
	case Hit:
		return "hit"
	case Wait:
		return "wait"
	}
	return "unknown"
}

// Claimed is the result of a Claim.
type Claimed struct {
	Outcome Outcome
	// Record is the record after the claim: on Miss it carries the caller's
	// Token, on Hit the result, on Wait the current owner and lease.
	Record Record
}

// Completion is what Complete stores on a Done record.
type Completion struct {
	Output     *Output
	Result     json.RawMessage
	FunctionMS float64
	// Docs are stored as PutDocs would, with the record: in its
	// transaction on bolt and PostgreSQL (none when the claim is not the
	// caller's); before it on CouchDB (also when it is not).
	Docs []Doc
}

// Claims are the dedup records: atomic claims on dedup keys, the
// fenced writes of the claim's owner, and the reads and deletes of the
// records whatever their owner (explain, purge, a hit whose output is
// gone). The pipeline is their one user. All methods are safe for
// concurrent use, from any number of goroutines and replicas sharing the
// same backend.
type Claims interface {
	// Claim atomically claims key for owner with a lease of the given
	// length (which must be > 0). It is one atomic operation, never a
	// read followed by a write:
	//   absent                     → create Running, return Miss (Attempt 1)
	//   Done / Failed              → Hit
	//   Running, lease live or zero → Wait
	//   Running, lease expired     → take over with a new token, Attempt+1, Miss
	// parts are stored on a new record.
	Claim(ctx context.Context, key string, parts Parts, owner string, lease time.Duration) (Claimed, error)
	// Renew extends the lease of the claim held with token. ErrNotOwner if
	// token no longer owns key.
	Renew(ctx context.Context, key, token string, lease time.Duration) error
	// SetExternalID records a remote activation id on a running claim held
	// with token. ErrNotOwner otherwise.
	SetExternalID(ctx context.Context, key, token, externalID string) error
	// Complete turns the claim held with token into Done with c.
	// ErrNotOwner if token no longer owns key (a stale owner can never
	// overwrite its successor's claim or result).
	Complete(ctx context.Context, key, token string, c Completion) error
	// Fail ends the claim held with token. With cache, the record becomes
	// Failed (later claims Hit it); without, it is deleted so the next claim
	// runs again. ErrNotOwner if token does not own key.
	Fail(ctx context.Context, key, token, msg, class string, cache bool) error
	// Release deletes the claim held with token without a result.
	// ErrNotOwner if token does not own key.
	Release(ctx context.Context, key, token string) error
	// Get returns the record under key, or ErrNotFound.
	Get(ctx context.Context, key string) (Record, error)
	// Delete removes the record under key whatever its state (operator
	// purge, or a hit whose output object is gone). Idempotent.
	Delete(ctx context.Context, key string) error
	// DeleteResult removes the Done or Failed record under key only if it
	// is still the one last updated at updated: a replica that found a
	// result unusable (output gone, past retention) never deletes a claim
	// another replica has made since. Absent or changed: nothing, nil.
	DeleteResult(ctx context.Context, key string, updated time.Time) error
	// RepointOutput replaces the Output of the Done record under key with
	// out, and sets its Updated to now, only if it is still the one last
	// updated at updated (DeleteResult's rule): when the output object a
	// result points to is deleted, the record is pointed at another live
	// copy of the same bytes. State, Parts, Result and FunctionMS stay.
	// Absent, not Done, or changed since: ErrNotFound and nothing changes,
	// so the caller reads the record again or drops it.
	RepointOutput(ctx context.Context, key string, updated time.Time, out Output) error
	// Records calls fn for each record, in no particular order, until fn
	// returns an error.
	Records(ctx context.Context, fn func(Record) error) error
}

// Live reports whether a running record's lease still holds at now.
// A record without a lease deadline is locked, never free.
func Live(r Record, now time.Time) bool {
	return r.LeaseUntil.IsZero() || now.Before(r.LeaseUntil)
}
