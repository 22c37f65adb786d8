// Package backfill brings the objects already in a bucket under a
// function. A job lists the bucket in key order and sends every object
// through the pipeline's dedup path for that one function
// (pipeline.Backfill): an object that already has an activation of the
// function's version costs one index read, the others are claimed, run or
// reused exactly as their events would be, with the same activation ids.
//
// Jobs are index documents, so every replica sharing the index lists them,
// and they outlive the replica that runs them: each job keeps a watermark
// (every object up to that key is done) and a heartbeat; a job whose
// replica stopped is resumed from its watermark by the next replica that
// looks (see Manager.Run).
package backfill

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/objects"
)

// Defaults of a Manager and its jobs.
const (
	// DefaultConcurrency is how many objects a job has in flight at once.
	// It is small on purpose: backfill runs share the pipeline's run
	// slots (serve --runs) with live events.
	DefaultConcurrency = 4
	// MaxConcurrency bounds a job's concurrency.
	MaxConcurrency = 64
	// DefaultHeartbeat is how often a running job persists its progress,
	// and checks for a cancel, a redeploy of its function, and whether
	// another replica took it over.
	DefaultHeartbeat = time.Second
	// DefaultStaleAfter is how old a running job's heartbeat must be
	// before another replica resumes it: several heartbeats, so that a
	// slow index write or some clock skew between replicas does not hand
	// a live job over.
	DefaultStaleAfter = 10 * time.Second
	// DefaultScan is how often a Manager looks for running jobs that
	// nobody runs (new, released at shutdown, or stale).
	DefaultScan = 2 * time.Second
	// DefaultDrain is how long the objects in flight may finish when a
	// job stops (cancel, shutdown) before they are abandoned: a run cut
	// short leaves its claim to expire, and runs again later.
	DefaultDrain = 10 * time.Second
	// DefaultAttempts is how often one object is sent on index or store
	// errors before the job fails (with backoff, about a minute in all).
	DefaultAttempts = 8
	// DefaultCallTimeout bounds each index call of a Manager.
	DefaultCallTimeout = 30 * time.Second

	// docKind holds the jobs; cancelKind the cancel requests, apart from
	// the jobs so that only a job's runner ever writes the job (no lost
	// updates between a cancel and a progress write).
	docKind    = "backfill"
	cancelKind = "backfill-cancel"
)

// Errors of the Manager; check them with errors.Is.
var (
	// ErrNotFound: no job with that id (for that tenant).
	ErrNotFound = errors.New("backfill job not found")
	// ErrInvalid wraps a request that cannot be run as asked.
	ErrInvalid = errors.New("invalid backfill")
	// ErrConflict: the function already has a running backfill, or the
	// job asked to cancel has already finished.
	ErrConflict = errors.New("backfill conflict")
)

// State of a job.
type State string

// States. Only Running changes; the others are final.
const (
	Running  State = "running"
	Done     State = "done"     // every object listed was sent
	Canceled State = "canceled" // stopped by a cancel
	Failed   State = "failed"   // stopped by an error: see Job.Error
)

// Request asks for a backfill: the body of POST /v1/backfills. The
// tenant comes from the caller, never from the body.
type Request struct {
	Tenant   string `json:"-"`
	Function string `json:"function"`
	// Bucket defaults to, and must be, the function's trigger bucket.
	Bucket string `json:"bucket,omitempty"`
	// Prefix defaults to the function's trigger prefix, and must lie
	// within it.
	Prefix string `json:"prefix,omitempty"`
	// Rate is the most objects sent per second; 0 = no limit.
	Rate float64 `json:"rate,omitempty"`
	// Concurrency is the most objects in flight; 0 = DefaultConcurrency.
	Concurrency int `json:"concurrency,omitempty"`
}

// Counters count a job's objects by what happened to them.
type Counters struct {
	Objects int64 `json:"objects"` // done, whatever the outcome
	Bytes   int64 `json:"bytes"`   // their sizes
	Runs    int64 `json:"runs"`    // the function ran (miss)
	Hits    int64 `json:"hits"`    // a recorded result was reused
	Waits   int64 `json:"waits"`   // reused after waiting for a concurrent run
	// Skipped: already had an activation of the version, not an input
	// (dedupfn's own output), or deleted since listed.
	Skipped int64 `json:"skipped"`
	Errors  int64 `json:"errors"` // recorded as a failed activation
}

func (c *Counters) add(o Counters) {
	c.Objects += o.Objects
	c.Bytes += o.Bytes
	c.Runs += o.Runs
	c.Hits += o.Hits
	c.Waits += o.Waits
	c.Skipped += o.Skipped
	c.Errors += o.Errors
}

// outcome counts one object sent: rec is the activation recorded, nil
// when there was nothing to do.
func outcome(o objects.Info, rec *activation.Record) Counters {
	c := Counters{Objects: 1, Bytes: o.Size}
	if rec == nil {
		c.Skipped = 1
		return c
	}
	switch rec.Decision {
	case activation.Miss:
		c.Runs = 1
	case activation.Hit:
		c.Hits = 1
	case activation.Wait:
		c.Waits = 1
	case activation.Error:
		c.Errors = 1
	default:
		c.Skipped = 1
	}
	return c
}

// Job is a backfill as the API shows it. Its JSON names are a contract
// with the dashboard. Runs+Hits+Waits+Skipped+Errors = Objects (Hits do
// not include Waits, unlike activation.Stats). Counters count objects up
// to the job's watermark only, so they never count an object twice
// across a resume; one that finished beyond the watermark before a
// restart counts as skipped when it is sent again.
type Job struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	Function string `json:"function"`
	// Version is the function version the job sends objects to; a
	// redeploy (a new version) fails the job.
	Version     string  `json:"version"`
	Bucket      string  `json:"bucket"`
	Prefix      string  `json:"prefix"`
	State       State   `json:"state"`
	Error       string  `json:"error"`
	Rate        float64 `json:"rate"`
	Concurrency int     `json:"concurrency"`
	// TotalObjects and TotalBytes are what the job will send: 0 until a
	// count, listed alongside, completes.
	TotalObjects int64 `json:"total_objects"`
	TotalBytes   int64 `json:"total_bytes"`
	Counters
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Finished time.Time `json:"finished,omitzero"`
}

// doc is a job as stored: the Job and what its runner needs to resume.
type doc struct {
	Job
	// Cursor is the watermark: every object of the job with a key up
	// to it is done. A resumed job lists after it.
	Cursor string `json:"cursor,omitempty"`
	// Counted: TotalObjects and TotalBytes are final.
	Counted bool `json:"counted,omitempty"`
	// Owner is the replica running the job ("" = nobody: up for any
	// replica to resume); Heartbeat when it last wrote.
	Owner     string    `json:"owner,omitempty"`
	Heartbeat time.Time `json:"heartbeat,omitzero"`
}

// newID returns a job id that sorts by creation time: 12 hex digits of
// Unix milliseconds, then 6 random ones.
func newID(now time.Time) string {
	var r [3]byte
	rand.Read(r[:])
	return fmt.Sprintf("%012x%s", now.UnixMilli(), hex.EncodeToString(r[:]))
}
