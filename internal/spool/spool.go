// Package spool buffers a stream with bounded memory: the first bytes stay
// in memory, the rest go to a temporary file. The pipeline spools each
// input while hashing it, so the function runs on exactly the bytes that
// were fingerprinted, and spools each output before storing it.
package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// DefaultMemLimit is how many bytes a spool keeps in memory before it
// switches to a temporary file.
const DefaultMemLimit = 4 << 20

// ErrTooLarge is returned by Write once more than the spool's max size is written.
var ErrTooLarge = errors.New("spool: size limit exceeded")

// Spool is an io.Writer that can be read back any number of times.
// It is not safe for concurrent use.
type Spool struct {
	dir      string
	memLimit int
	maxSize  int64 // 0 = unbounded
	mem      bytes.Buffer
	file     *os.File
	size     int64
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

// Write appends p.
func (s *Spool) Write(p []byte) (int, error) {
	if s.maxSize > 0 && s.size+int64(len(p)) > s.maxSize {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.maxSize)
	}
	if s.file == nil && s.mem.Len()+len(p) > s.memLimit {
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

// Close releases the temporary file. Safe to call twice.
func (s *Spool) Close() error {
	s.mem = bytes.Buffer{}
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	s.file = nil
	return err
}
