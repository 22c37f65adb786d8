// Package bolt is the embedded dedup index on a bbolt file: every write
// is one bbolt write transaction, and concurrent ones share a commit
// (group commit: one fsync round for all the completions and activation
// records that arrived during the previous one). A claim that finds a
// result or a live owner only reads, and a running claim lives in memory
// (see running): the file is locked to this process.
package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/groupcommit"
	"github.com/dedupfn/dedupfn/internal/index"
)

// Defaults.
const (
	// DefaultOpenTimeout is how long Open waits for another process's lock.
	DefaultOpenTimeout = 2 * time.Second
	// WaitBackstop bounds one WaitChange when the claim's lease is
	// further away: in-process notifications cannot be missed (only this
	// process opens the file), so it is only a safety net.
	WaitBackstop = 30 * time.Second
	// pruneBatch is how many activations one write transaction of
	// PruneActivations deletes, so that claims are not held up behind it.
	pruneBatch = 1000
)

var (
	bucketClaims = []byte("claims")
	bucketDocs   = []byte("docs")
	bucketBlobs  = []byte("blobs")
	bucketActs   = []byte("activations")    // time+id → record
	bucketActIDs = []byte("activation_ids") // id → time+id
	// bucketActIndex lists activations by tenant, function and both:
	// actIndexKeys → {}. Files written before it existed get it on open.
	bucketActIndex = []byte("activation_index")
	bucketStats    = []byte("stats") // tenant → activation.Stats
	// bucketFnStats holds the totals per function: fnStatsKey → the
	// function's activation.Stats. Files written before it existed get
	// it on open, counted from the activations they still keep.
	bucketFnStats = []byte("function_stats")
	// bucketDocRevs counts the writes of each kind of document: kind →
	// 8 bytes, big-endian (see DocsRevision).
	bucketDocRevs = []byte("doc_revisions")
	// Files written before ObjectSeen was removed keep an unused
	// "objects_seen" bucket: nothing reads or writes it.
	allBuckets    = [][]byte{bucketClaims, bucketDocs, bucketBlobs, bucketActs, bucketActIDs, bucketStats, bucketDocRevs}
	allTenantsKey = []byte("*")
)

func init() { index.Register("bolt", Open) }

// activationsRead counts the activation records Activations decodes, for
// tests that check a filtered listing reads only what it returns.
var activationsRead atomic.Int64

// DB is a bbolt-backed index.
type DB struct {
	db      *bbolt.DB
	w       *groupcommit.Committer // the hot writes: claims, CAS, activations
	changes index.Changes          // WaitChange's subscribers
	running running                // running claims not on disk
	queued  queued                 // completions committing (Complete)
	logger  *slog.Logger
}

var (
	_ index.Index        = (*DB)(nil)
	_ index.Waiter       = (*DB)(nil)
	_ index.DocRevisions = (*DB)(nil)
)

// Open opens bolt:PATH (absolute or relative), creating the file.
// A host (bolt://name/...) is refused rather than silently dropped: it is
// almost always a relative path written with two slashes.
func Open(_ context.Context, u *url.URL, opts index.Options) (index.Index, error) {
	if u.Host != "" {
		return nil, fmt.Errorf("bolt: url must be bolt:PATH or bolt:///abs/path, got host %q in %q", u.Host, u.Redacted())
	}
	path := u.Opaque
	if path == "" {
		path = u.Path
	}
	if path == "" {
		return nil, errors.New("bolt: url must name a file, e.g. bolt:/var/lib/dedupfn/index.db")
	}
	d, err := OpenFile(path)
	if err != nil {
		return nil, err
	}
	if opts.Logger != nil {
		d.logger = opts.Logger
	}
	return d, nil
}

// OpenFile opens the index file at path.
func OpenFile(path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("bolt: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: create dir: %w", err)
	}
	db, err := bbolt.Open(abs, 0o600, &bbolt.Options{Timeout: DefaultOpenTimeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("bolt: index file %s is locked by another process (is another dedupfn serve using this --data?)", abs)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", abs, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketActIndex) == nil {
			if err := buildActIndex(tx); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketFnStats) == nil {
			return buildFnStats(tx)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: init %s: %w", abs, err)
	}
	return &DB{db: db, w: groupcommit.New(db), logger: slog.New(slog.DiscardHandler)}, nil
}

// Close waits for the completions still committing (see Complete) and
// closes the file.
func (d *DB) Close() error {
	d.queued.wait()
	return d.db.Close()
}

// wrap prefixes err with the backend and the operation; nil stays nil.
func wrap(err error, op, key string) error {
	if err == nil {
		return nil
	}
	if key == "" {
		return fmt.Errorf("bolt: %s: %w", op, err)
	}
	return fmt.Errorf("bolt: %s %s: %w", op, key, err)
}
