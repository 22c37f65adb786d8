package process

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dedupfn/dedupfn/internal/runtime"
)

// unpack writes fn.Code under WorkDir/<digest>/ once and returns the
// executable's path (exec, or a launcher script: see launchers.go) and
// its directory.
func (r *Runtime) unpack(fn runtime.Function) (path, dir string, err error) {
	if len(fn.Code) == 0 {
		return "", "", errors.New("process: function has no code")
	}
	digest := codeDigest(fn.Code)
	if fn.CodeDigest != "" && !strings.EqualFold(fn.CodeDigest, digest) {
		return "", "", fmt.Errorf("process: code digest mismatch: function says %s, code is %s", fn.CodeDigest, digest)
	}
	dir = filepath.Join(r.opts.WorkDir, digest)
	r.unpackMu.Lock()
	defer r.unpackMu.Unlock()
	if name, err := entry(dir); err == nil {
		return filepath.Join(dir, name), dir, nil
	}
	if err := os.MkdirAll(r.opts.WorkDir, 0o755); err != nil {
		return "", "", fmt.Errorf("process: create work dir: %w", err)
	}
	tmp, err := os.MkdirTemp(r.opts.WorkDir, digest[:12]+".tmp-")
	if err != nil {
		return "", "", fmt.Errorf("process: create unpack dir: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	// MkdirTemp makes it 0700; an ExecUser must reach it.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", "", fmt.Errorf("process: chmod unpack dir: %w", err)
	}
	if bytes.HasPrefix(fn.Code, []byte("PK\x03\x04")) {
		err = unzip(fn.Code, tmp, r.opts.MaxUnzipBytes, r.opts.MaxUnzipFiles)
	} else {
		err = os.WriteFile(filepath.Join(tmp, "exec"), fn.Code, 0o755)
	}
	if err != nil {
		return "", "", err
	}
	name, err := entry(tmp)
	if err != nil {
		return "", "", err
	}
	st, err := os.Stat(filepath.Join(tmp, name))
	if err != nil {
		return "", "", fmt.Errorf("process: %w", err)
	}
	if err := os.Chmod(filepath.Join(tmp, name), st.Mode().Perm()|0o755); err != nil {
		return "", "", fmt.Errorf("process: chmod %s: %w", name, err)
	}
	_ = os.RemoveAll(dir) // a partial directory from a crash
	if err := os.Rename(tmp, dir); err != nil {
		return "", "", fmt.Errorf("process: install code: %w", err)
	}
	return filepath.Join(dir, name), dir, nil
}

// entry is the name of what runs in an unpacked code directory: exec, or
// the launcher a zip of ActionCode names in its manifest.
func entry(dir string) (string, error) {
	if st, err := os.Stat(filepath.Join(dir, "exec")); err == nil && st.Mode().IsRegular() {
		return "exec", nil
	}
	m, err := readManifest(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", errors.New("process: zip has no file named exec at its root")
	}
	if err != nil {
		return "", err
	}
	lang, err := m.language()
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(filepath.Join(dir, lang.launcher)); err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("process: %s action without its launcher %s", m.Kind, lang.launcher)
	}
	return lang.launcher, nil
}

// codeDigest is the SHA-256 (hex) of code: its directory under WorkDir.
func codeDigest(code []byte) string {
	sum := sha256.Sum256(code)
	return hex.EncodeToString(sum[:])
}

// unzip extracts a zip into dir: at most maxFiles entries and maxBytes in
// all, regular files and directories only, every path inside dir.
func unzip(code []byte, dir string, maxBytes int64, maxFiles int) error {
	zr, err := zip.NewReader(bytes.NewReader(code), int64(len(code)))
	if err != nil {
		return fmt.Errorf("process: open zip: %w", err)
	}
	if len(zr.File) > maxFiles {
		return fmt.Errorf("process: zip has %d entries, more than %d files", len(zr.File), maxFiles)
	}
	tooBig := fmt.Errorf("process: zip expands to more than %d bytes", maxBytes)
	// Declared sizes refuse most bombs before anything is written;
	// extract enforces the budget on the real bytes.
	var declared uint64
	for _, f := range zr.File {
		if err := checkEntry(f); err != nil {
			return err
		}
		if f.UncompressedSize64 > uint64(maxBytes)-declared { // no overflow
			return tooBig
		}
		declared += f.UncompressedSize64
	}
	budget := maxBytes
	for _, f := range zr.File {
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("process: unzip %s: %w", f.Name, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("process: unzip %s: %w", f.Name, err)
		}
		n, err := extract(f, dst, budget)
		if err != nil {
			return err
		}
		if budget -= n; budget < 0 {
			return tooBig
		}
	}
	return nil
}

// checkEntry refuses a zip entry that is not a regular file or directory,
// or whose path is absolute or leaves the action directory.
func checkEntry(f *zip.File) error {
	name := filepath.FromSlash(f.Name)
	switch {
	case strings.HasPrefix(f.Name, "/") || filepath.IsAbs(name):
		return fmt.Errorf("process: zip entry %q: absolute path", f.Name)
	case slices.Contains(strings.Split(f.Name, "/"), ".."):
		return fmt.Errorf("process: zip entry %q: path has \"..\"", f.Name)
	case !filepath.IsLocal(name):
		return fmt.Errorf("process: zip entry %q leaves the action directory", f.Name)
	case f.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("process: zip entry %q is a symlink", f.Name)
	case !f.FileInfo().IsDir() && !f.Mode().IsRegular():
		return fmt.Errorf("process: zip entry %q is not a regular file", f.Name)
	}
	return nil
}

// extract writes f to dst, at most max+1 bytes, and returns how many it
// wrote.
func extract(f *zip.File, dst string, max int64) (int64, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("process: unzip %s: %w", f.Name, err)
	}
	defer rc.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, f.Mode().Perm()|0o600)
	if err != nil {
		return 0, fmt.Errorf("process: unzip %s: %w", f.Name, err)
	}
	n, err := io.Copy(out, io.LimitReader(rc, max+1))
	if err != nil {
		out.Close()
		return n, fmt.Errorf("process: unzip %s: %w", f.Name, err)
	}
	if err := out.Close(); err != nil {
		return n, fmt.Errorf("process: unzip %s: %w", f.Name, err)
	}
	return n, nil
}
