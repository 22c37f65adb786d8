// Package activation defines the record kept for every event, and the
// totals derived from them.
package activation

import (
	"encoding/json"
	"time"
)

// Decision is what the pipeline did with an event.
type Decision string

// Decisions.
const (
	Miss    Decision = "miss"    // function ran
	Hit     Decision = "hit"     // recorded output reused
	Wait    Decision = "wait"    // waited for another run of the same key, then reused it
	Error   Decision = "error"   // failed; see Error and ErrorClass
	Skipped Decision = "skipped" // no function applied (self-written output, deleted object)
	// Delete: an input was deleted, and so was the output the function
	// wrote for it (fn deploy --on-input-delete delete).
	Delete Decision = "delete"
)

// Timings of the stages of one activation, in milliseconds.
type Timings struct {
	QueueMS  float64 `json:"queue_ms"`
	FetchMS  float64 `json:"fetch_hash_ms"`
	LookupMS float64 `json:"lookup_ms"`
	InvokeMS float64 `json:"invoke_ms"`
	// RunWaitMS is how long a run waited for a free slot (serve --runs):
	// queueing behind other runs, not platform work.
	RunWaitMS float64 `json:"run_wait_ms,omitempty"`
	StoreMS   float64 `json:"store_ms"`
	TotalMS   float64 `json:"total_ms"`
}

// Object is a location in the object store.
type Object struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	// VersionID is the object's version where the store keeps versions.
	VersionID string `json:"version_id,omitempty"`
	ETag      string `json:"etag,omitempty"`
	Size      int64  `json:"size,omitempty"`
	// SHA256 is the hex SHA-256 of an output's bytes, as recorded: what
	// the functions its output triggers decide from, unread.
	SHA256 string `json:"sha256,omitempty"`
}

// Record is one activation: one event processed by one function.
type Record struct {
	ID          string          `json:"id"`
	EventID     string          `json:"event_id"`
	Tenant      string          `json:"tenant"`
	Function    string          `json:"function"`
	Version     string          `json:"version"`
	Event       Object          `json:"event"`
	EventSource string          `json:"event_source"`
	EventTime   time.Time       `json:"event_time"`
	Start       time.Time       `json:"start"`
	Fingerprint string          `json:"fingerprint,omitempty"`
	Key         string          `json:"dedup_key,omitempty"`
	Decision    Decision        `json:"decision"`
	Output      *Object         `json:"output,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	Logs        string          `json:"logs,omitempty"`
	Error       string          `json:"error,omitempty"`
	ErrorClass  string          `json:"error_class,omitempty"`
	Attempts    int             `json:"attempts"`
	DeadLetter  bool            `json:"dead_letter,omitempty"`
	ExternalID  string          `json:"external_id,omitempty"` // e.g. the OpenWhisk activationId
	Timings     Timings         `json:"timings"`
	FunctionMS  float64         `json:"function_ms"` // compute the function used (on a miss) or would have used (on a hit)
	SavedMS     float64         `json:"saved_ms"`    // function time saved by a hit or wait

	// RetryOf is the dead-lettered activation this one retried (dlq retry).
	RetryOf string `json:"retry_of,omitempty"`

	// Cause is the activation that caused this one: the one that wrote
	// its input (a pipeline's previous stage), or a sequence's, as
	// OpenWhisk's "cause"; empty for an upload.
	Cause string `json:"cause,omitempty"`
	// Root is the upload a pipeline started from: the event's own object
	// for an upload.
	Root *Object `json:"root,omitempty"`
	// Stage is the function's place in its pipeline: 1 for a function an
	// upload triggers, n+1 for one an output of stage n triggers.
	Stage int `json:"stage,omitempty"`
}

// Stats are the totals over activation records.
type Stats struct {
	Events int64 `json:"events"`
	Runs   int64 `json:"runs"`
	// Hits counts events served from a recorded result without a run,
	// including Waits: those that first waited for a concurrent run of
	// the same content.
	Hits    int64 `json:"hits"`
	Waits   int64 `json:"waits"`
	Errors  int64 `json:"errors"`
	Skipped int64 `json:"skipped"`
	// Deletes counts the outputs deleted with their inputs, apart from
	// hits and runs.
	Deletes     int64   `json:"deletes"`
	DeadLetters int64   `json:"dead_letters"`
	FunctionMS  float64 `json:"function_ms"`
	SavedMS     float64 `json:"saved_ms"`
}

// Add folds one record into the totals. Every index backend uses this so
// the totals mean the same thing everywhere.
func (s *Stats) Add(r Record) {
	s.Events++
	switch r.Decision {
	case Miss:
		s.Runs++
	case Hit:
		s.Hits++
	case Wait:
		s.Hits++
		s.Waits++
	case Error:
		s.Errors++
	case Skipped:
		s.Skipped++
	case Delete:
		s.Deletes++
	}
	if r.DeadLetter {
		s.DeadLetters++
	}
	if r.Decision == Miss {
		s.FunctionMS += r.FunctionMS
	}
	s.SavedMS += r.SavedMS
}

// HitRate is the share of the events that needed a function's output
// which were served without a run: Hits / (Hits + Runs), 0 when there
// were none. Errors and skipped events do not count either way.
func (s Stats) HitRate() float64 {
	if s.Hits+s.Runs == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Runs)
}

// FunctionStats are the totals of one function of one tenant, counted
// like Stats (Stats.Add over each activation of the function once).
// Versions of a function count together under its name.
type FunctionStats struct {
	Tenant   string `json:"tenant"`
	Function string `json:"function"`
	Stats
}

// Filter selects activation records; zero fields match everything.
type Filter struct {
	Tenant   string
	Function string
	Limit    int // newest first; 0 means a default of 100

	// Since keeps the records that started at or after it.
	Since time.Time
}
