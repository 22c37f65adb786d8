package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
	"github.com/dedupfn/dedupfn/internal/runtime/wasm/wasmtest"
)

// TestWasm builds this example to WebAssembly and runs it through the
// wasm runtime, as dedupfn would.
func TestWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and compiles a wasm module")
	}
	fn := wasmtest.Function("thumbnail", wasmtest.Build(t, "."))
	r := wasmtest.NewRuntime(t)

	invoke := func(t *testing.T, input []byte, params map[string]string) ([]byte, error) {
		var out bytes.Buffer
		_, err := r.Invoke(t.Context(), &runtime.Invocation{
			Function: fn,
			Params:   params,
			Input:    bytes.NewReader(input),
			Output:   &out,
			Limits:   runtime.Limits{Timeout: time.Minute, MemoryBytes: 256 << 20, MaxOutputBytes: 10 << 20},
		})
		return out.Bytes(), err
	}

	src := testImage(640, 480)
	for name, in := range map[string][]byte{"PNG": encodePNG(t, src), "JPEG": encodeJPEG(t, src)} {
		t.Run(name, func(t *testing.T) {
			out, err := invoke(t, in, nil)
			if err != nil {
				t.Fatal(err)
			}
			if w, h := decodeJPEG(t, out); w != 128 || h != 96 {
				t.Errorf("thumbnail is %dx%d, want 128x96", w, h)
			}
		})
	}
	// The committed sample photos, as a user would upload them.
	for _, tt := range []struct {
		file         string
		wantW, wantH int
	}{{"cat.jpg", 128, 96}, {"dog.png", 128, 96}} {
		t.Run(tt.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			out, err := invoke(t, in, map[string]string{"size": "128"})
			if err != nil {
				t.Fatal(err)
			}
			if w, h := decodeJPEG(t, out); w != tt.wantW || h != tt.wantH {
				t.Errorf("thumbnail of %s is %dx%d, want %dx%d", tt.file, w, h, tt.wantW, tt.wantH)
			}
			if dir := os.Getenv("THUMBNAIL_OUT"); dir != "" { // to look at them
				_ = os.WriteFile(filepath.Join(dir, tt.file+".thumb.jpg"), out, 0o644)
			}
		})
	}
	t.Run("SizeParam", func(t *testing.T) {
		out, err := invoke(t, encodePNG(t, src), map[string]string{"size": "64"})
		if err != nil {
			t.Fatal(err)
		}
		if w, h := decodeJPEG(t, out); w != 64 || h != 48 {
			t.Errorf("thumbnail is %dx%d, want 64x48", w, h)
		}
	})
	t.Run("Text", func(t *testing.T) {
		_, err := invoke(t, []byte("just some text"), nil)
		var re *runtime.Error
		if !errors.As(err, &re) || re.Class != runtime.ClassFunction {
			t.Fatalf("error %v, want a %s *runtime.Error", err, runtime.ClassFunction)
		}
		if !strings.Contains(re.Stderr, "thumbnail: input is not a JPEG or PNG image: ") {
			t.Errorf("stderr %q does not say the input is not an image", re.Stderr)
		}
	})
	t.Run("BadSize", func(t *testing.T) {
		_, err := invoke(t, encodePNG(t, src), map[string]string{"size": "huge"})
		var re *runtime.Error
		if !errors.As(err, &re) || re.Class != runtime.ClassFunction || !strings.Contains(re.Error(), "exit code 2") {
			t.Fatalf("error %v, want a %s error with exit code 2", err, runtime.ClassFunction)
		}
	})
}
