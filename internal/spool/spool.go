// Package spool buffers a stream with bounded memory: the first bytes stay
// in memory, the rest go to a temporary file. The pipeline spools each
// input while hashing it, so the function runs on exactly the bytes that
// were fingerprinted, and spools each output before storing it.
package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// DefaultMemLimit is how many bytes a spool keeps in memory before it
// switches to a temporary file.
const DefaultMemLimit = 4 << 20

// ErrTooLarge is returned by Write once more than the spool's max size is written.
var ErrTooLarge = errors.New("spool: size limit exceeded")

// ErrOverBudget is returned by Write when the disk budget can never cover
// the write: the spool and its siblings alone need more than the whole
// budget.
var ErrOverBudget = errors.New("spool: disk budget exceeded")

// ErrContended is returned by Write when every holder of part of the
// budget is itself waiting for more, so that none would ever release:
// the write could fit once others finish, so it is worth retrying later.
var ErrContended = errors.New("spool: every holder of the disk budget is waiting for more")

// Spool is an io.Writer that can be read back any number of times.
// It is not safe for concurrent use.
type Spool struct {
	dir      string
	memLimit int
	maxSize  int64 // 0 = unbounded
	mem      bytes.Buffer
	file     *os.File
	size     int64

	// budget, if set, is charged for every byte in the temporary file,
	// on the account the spool shares with its siblings; ctx bounds the
	// waits for it (see NewBudgeted).
	budget   *Budget
	acct     *account
	ctx      context.Context
	reserved int64
	refused  error // the first budget refusal, see Refused
}

// New returns an empty spool that keeps up to memLimit bytes in memory and
// the rest in a temporary file under dir ("" = os.TempDir()). maxSize > 0
// bounds the total size.
func New(dir string, memLimit int, maxSize int64) *Spool {
	if memLimit <= 0 {
		memLimit = DefaultMemLimit
	}
	return &Spool{dir: dir, memLimit: memLimit, maxSize: maxSize}
}

// NewBudgeted is New with the temporary file charged to b, a disk budget
// shared with other spools: a Write that would take b past its limit
// blocks until other spools are closed, or until ctx ends (then it returns
// ctx's error). ctx is held for the spool's life because Write has no
// context parameter; a spool is short-lived, like the request it buffers.
// A nil b means no budget, as with New.
func NewBudgeted(ctx context.Context, b *Budget, dir string, memLimit int, maxSize int64) *Spool {
	s := New(dir, memLimit, maxSize)
	s.budget, s.acct, s.ctx = b, &account{}, ctx
	return s
}

// Sibling is a new spool under s's directory and budget that shares s's
// account: the budget sees the two as one holder. An event's output spool
// is its input's sibling, so an output that waits for budget while its
// own input holds it counts as that holder waiting, and a wait nobody
// could end (every holder waiting) fails instead of blocking forever.
// Siblings are written one at a time, as an event writes its input and
// then its outputs. ctx bounds the new spool's waits.
func (s *Spool) Sibling(ctx context.Context, memLimit int, maxSize int64) *Spool {
	sib := New(s.dir, memLimit, maxSize)
	sib.budget, sib.acct, sib.ctx = s.budget, s.acct, ctx
	return sib
}

// Write appends p.
func (s *Spool) Write(p []byte) (int, error) {
	if s.maxSize > 0 && s.size+int64(len(p)) > s.maxSize {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.maxSize)
	}
	spill := s.file == nil && s.mem.Len()+len(p) > s.memLimit
	if s.budget != nil && (spill || s.file != nil) {
		need := int64(len(p))
		if spill {
			need += int64(s.mem.Len())
		}
		if err := s.budget.reserve(s.ctx, s.acct, need); err != nil {
			if s.refused == nil {
				s.refused = err
			}
			return 0, err
		}
		s.reserved += need
	}
	if spill {
		f, err := os.CreateTemp(s.dir, "dedupfn-spool-*")
		if err != nil {
			return 0, fmt.Errorf("spool: create temp file: %w", err)
		}
		// Unlink at once: the open handle keeps the data, and a crash leaves nothing behind.
		os.Remove(f.Name())
		if _, err := f.Write(s.mem.Bytes()); err != nil {
			f.Close()
			return 0, fmt.Errorf("spool: write temp file: %w", err)
		}
		s.mem = bytes.Buffer{}
		s.file = f
	}
	var n int
	var err error
	if s.file != nil {
		n, err = s.file.Write(p)
	} else {
		n, err = s.mem.Write(p)
	}
	s.size += int64(n)
	return n, err
}

// Refused returns the error of the first Write the budget refused
// (ErrOverBudget, or the wait's context error), or nil: what a function
// that wrote the spool made of the error does not hide it.
func (s *Spool) Refused() error { return s.refused }

// Size is the number of bytes written.
func (s *Spool) Size() int64 { return s.size }

// Reader returns a reader over everything written so far.
func (s *Spool) Reader() io.Reader {
	if s.file != nil {
		return io.NewSectionReader(s.file, 0, s.size)
	}
	return bytes.NewReader(s.mem.Bytes())
}

// Bytes returns the content if it is held in memory, else nil.
func (s *Spool) Bytes() []byte {
	if s.file != nil {
		return nil
	}
	return s.mem.Bytes()
}

// Close releases the temporary file and its share of the budget. Safe to
// call twice.
func (s *Spool) Close() error {
	s.mem = bytes.Buffer{}
	if s.budget != nil && s.reserved > 0 {
		s.budget.release(s.acct, s.reserved)
		s.reserved = 0
	}
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}

// Budget bounds the disk used by the temporary files of all the spools
// created with it (NewBudgeted), so concurrent large inputs wait for
// each other instead of filling the disk. Its methods are safe for
// concurrent use.
//
// It counts holders, not spools: a spool and its siblings (an event's
// input and outputs) are one account, which holds budget while any of
// them does and waits while one of them does. When every holder waits,
// nobody would ever release, so the last to wait fails instead.
type Budget struct {
	max int64

	mu      sync.Mutex
	used    int64
	holders int           // accounts holding part of the budget
	waiting int           // of those, how many wait in this generation
	gen     uint64        // advanced by every release: its waiters are awake
	changed chan struct{} // closed and replaced on every release
}

// account is what a spool and its siblings hold of a budget; guarded by
// Budget.mu.
type account struct {
	held int64
	// waitGen is the budget generation in which one of the account's
	// spools began to wait (0 = none): a release wakes every waiter, so
	// from then on it counts as waiting again only once it has checked
	// the budget and found it still full.
	waitGen uint64
}

// NewBudget returns a disk budget of maxBytes. maxBytes <= 0 means no
// limit and returns nil, which NewBudgeted accepts.
func NewBudget(maxBytes int64) *Budget {
	if maxBytes <= 0 {
		return nil
	}
	return &Budget{max: maxBytes, gen: 1, changed: make(chan struct{})}
}

// Max is the budget's limit in bytes (0 for a nil, unlimited budget).
func (b *Budget) Max() int64 {
	if b == nil {
		return 0
	}
	return b.max
}

// Used is how many bytes the open spools hold.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// reserve charges need more bytes to a, waiting for releases while the
// budget is full.
func (b *Budget) reserve(ctx context.Context, a *account, need int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a.held+need > b.max {
		return fmt.Errorf("%w: %d bytes held and %d more needed by one holder, more than the whole budget of %d bytes", ErrOverBudget, a.held, need, b.max)
	}
	for b.used+need > b.max {
		if a.held > 0 && b.waiting+1 == b.holders {
			// Every other holder is blocked too: nobody would ever release.
			return fmt.Errorf("%w: all %d holders of the budget of %d bytes", ErrContended, b.holders, b.max)
		}
		b.setWaiting(a, true)
		changed := b.changed
		b.mu.Unlock()
		var err error
		select {
		case <-ctx.Done():
			err = fmt.Errorf("spool: wait for disk budget: %w", context.Cause(ctx))
		case <-changed:
		}
		b.mu.Lock()
		b.setWaiting(a, false)
		if err != nil {
			return err
		}
	}
	if a.held == 0 {
		b.holders++
	}
	a.held += need
	b.used += need
	return nil
}

// setWaiting marks a as waiting in the current generation, or not.
func (b *Budget) setWaiting(a *account, on bool) {
	counted := a.held > 0 && a.waitGen == b.gen
	switch {
	case on && !counted:
		a.waitGen = b.gen
		if a.held > 0 {
			b.waiting++
		}
	case !on:
		if counted {
			b.waiting--
		}
		a.waitGen = 0
	}
}

// release returns n bytes of a closed spool of a and wakes the waiters.
func (b *Budget) release(a *account, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	a.held -= n
	if a.held == 0 {
		b.holders--
	}
	// Every waiter wakes to check the budget again; until it has, none
	// counts as waiting (a new generation).
	b.gen++
	b.waiting = 0
	close(b.changed)
	b.changed = make(chan struct{})
}
