package process_test

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/process"
)

// zipEntry is one file of a test zip.
type zipEntry struct {
	name string
	mode os.FileMode
	data []byte
}

func makeZip(tb testing.TB, entries ...zipEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// dirSize is the total size of the regular files under dir.
func dirSize(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func TestZipExtractionLimits(t *testing.T) {
	exe := zipEntry{"exec", 0o755, []byte(bashUpper)}
	many := []zipEntry{exe}
	for i := range 20 {
		many = append(many, zipEntry{"lib/f" + strconv.Itoa(i), 0o644, []byte("x")})
	}
	tests := []struct {
		name string
		zip  []byte
		opts process.Options
		want string
	}{
		{"Bomb", makeZip(t, exe, zipEntry{"zeros", 0o644, make([]byte, 8<<20)}),
			process.Options{MaxUnzipBytes: 1 << 20}, "more than 1048576 bytes"},
		{"TooManyFiles", makeZip(t, many...), process.Options{MaxUnzipFiles: 10}, "more than 10 files"},
		{"DotDot", makeZip(t, exe, zipEntry{"../evil", 0o644, []byte("x")}), process.Options{}, `"../evil": path has ".."`},
		{"Absolute", makeZip(t, exe, zipEntry{"/evil", 0o644, []byte("x")}), process.Options{}, `"/evil": absolute path`},
		{"Symlink", makeZip(t, exe, zipEntry{"link", os.ModeSymlink | 0o777, []byte("/etc/passwd")}), process.Options{}, `"link" is a symlink`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.WorkDir = filepath.Join(t.TempDir(), "work")
			r := newRuntime(t, tt.opts)
			_, _, err := invoke(t, r, fn(t, tt.name, tt.zip), "a")
			re := wantClass(t, err, runtime.ClassInit)
			if !strings.Contains(re.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
			if n := dirSize(t, filepath.Dir(tt.opts.WorkDir)); n > 1<<20+64<<10 {
				t.Fatalf("%d bytes left on disk after a refused zip", n)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(tt.opts.WorkDir), "evil")); err == nil {
				t.Fatal("a zip entry was written outside the work dir")
			}
		})
	}
	t.Run("DefaultsAllowNormalZip", func(t *testing.T) {
		r := newRuntime(t, process.Options{})
		_, out, err := invoke(t, r, fn(t, "ok", makeZip(t, many...)), "a")
		if err != nil || out != "A" {
			t.Fatalf("output %q, err %v", out, err)
		}
	})
}

func TestForgetRemovesExtractedTree(t *testing.T) {
	work := t.TempDir()
	r := newRuntime(t, process.Options{WorkDir: work})
	var _ runtime.Forgetter = r
	f := fn(t, "upper", zipExec(t, []byte(bashUpper)))
	res, _, err := invoke(t, r, f, "a")
	if err != nil {
		t.Fatal(err)
	}
	pid := int(resultField(t, res, "pid").(float64))
	tree := filepath.Join(work, f.CodeDigest)
	if _, err := os.Stat(filepath.Join(tree, "lib", "data.txt")); err != nil {
		t.Fatalf("extracted tree: %v", err)
	}
	if err := r.Forget(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tree); !os.IsNotExist(err) {
		t.Fatalf("after Forget, %s: %v, want it removed", tree, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("warm process %d of the forgotten function still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.Forget(t.Context(), f); err != nil {
		t.Fatalf("second Forget: %v", err)
	}
	// Deploying the same code again works.
	if _, out, err := invoke(t, r, f, "b"); err != nil || out != "B" {
		t.Fatalf("after Forget: output %q, err %v", out, err)
	}
}
