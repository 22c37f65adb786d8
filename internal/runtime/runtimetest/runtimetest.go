// Package runtimetest is the conformance suite that every runtime.Runtime
// passes, in the spirit of testing/fstest: a backend supplies a Harness
// (a factory and a set of named fixture functions) and Run checks the
// contract of runtime.Runtime against it.
package runtimetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime"
)

// Fixture names a runtime's harness must provide.
const (
	// Upper: output = input with ASCII letters upper-cased.
	Upper = "upper"
	// Param: output = value of param "greeting", then the input bytes.
	Param = "param"
	// Fail writes "boom" to stderr (or its logs) and fails (non-zero exit
	// or error result).
	Fail = "fail"
	// Hang never finishes (infinite loop).
	Hang = "hang"
	// Hog allocates memory without bound.
	Hog = "hog"
)

// Harness is what a runtime supplies to Run.
type Harness struct {
	// New returns a fresh runtime; the suite closes it via t.Cleanup.
	New func(t testing.TB) runtime.Runtime
	// Fixture returns the function for a fixture name (Upper, Param, ...).
	Fixture func(t testing.TB, name string) runtime.Function
	// NoMemoryLimit reports that the runtime cannot bound memory: the Hog
	// subtest is skipped.
	NoMemoryLimit bool
}

// Timing bounds used by the suite.
const (
	// defaultTimeout bounds invocations that are expected to finish.
	defaultTimeout = 60 * time.Second
	// hangTimeout is Limits.Timeout for the Hang fixture.
	hangTimeout = 500 * time.Millisecond
	// stopWithin is how soon after its deadline or cancel a Hang must stop.
	stopWithin = 5 * time.Second
	// hogMemory is Limits.MemoryBytes for the Hog fixture.
	hogMemory = 64 << 20
	// bigInput is the size of the streamed input of Upper.
	bigInput = 5 << 20
	// concurrency is how many invocations of Upper run at once.
	concurrency = 8
)

// Run runs the conformance suite against h as subtests of t.
func Run(t *testing.T, h Harness) {
	if h.New == nil || h.Fixture == nil {
		t.Fatal("runtimetest: Harness.New and Harness.Fixture are required")
	}
	t.Run("Upper", func(t *testing.T) { testUpper(t, h) })
	t.Run("UpperStreamed5MiB", func(t *testing.T) { testUpperStreamed(t, h) })
	t.Run("Param", func(t *testing.T) { testParam(t, h) })
	t.Run("Fail", func(t *testing.T) { testFail(t, h) })
	t.Run("HangTimeout", func(t *testing.T) { testHangTimeout(t, h) })
	t.Run("HangCancel", func(t *testing.T) { testHangCancel(t, h) })
	t.Run("HogOOM", func(t *testing.T) {
		if h.NoMemoryLimit {
			t.Skip("runtime cannot bound memory")
		}
		testHog(t, h)
	})
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("Version", func(t *testing.T) { testVersion(t, h) })
}

// newRuntime returns h.New(t), closed at cleanup.
func newRuntime(t testing.TB, h Harness) runtime.Runtime {
	t.Helper()
	rt := h.New(t)
	if rt == nil {
		t.Fatal("Harness.New returned nil")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rt.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return rt
}

// Invoke runs fn on input with params and limits and returns the result,
// the output object as the pipeline would store it (the bytes written to
// Output, or Result.Result when the function wrote no output) and the
// error. A zero limits.Timeout is replaced by a generous default.
func Invoke(ctx context.Context, rt runtime.Runtime, fn runtime.Function, params map[string]string, input io.Reader, size int64, limits runtime.Limits) (runtime.Result, []byte, error) {
	if limits.Timeout == 0 {
		limits.Timeout = defaultTimeout
	}
	var out bytes.Buffer
	inv := &runtime.Invocation{
		Function: fn,
		Params:   params,
		Input:    input,
		Object: runtime.ObjectRef{
			Bucket: "in", Key: "object.txt", Size: size, SHA256: "0",
			OutputBucket: "out", OutputKey: "object.txt",
		},
		Output:       &out,
		Limits:       limits,
		ActivationID: fmt.Sprintf("runtimetest-%d", time.Now().UnixNano()),
	}
	res, err := rt.Invoke(ctx, inv)
	if err == nil && !res.OutputWritten && out.Len() == 0 && len(res.Result) > 0 {
		return res, []byte(res.Result), nil
	}
	return res, out.Bytes(), err
}

// onlyReader hides any WriterTo/Seeker of r so the runtime must stream it.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testUpper(t *testing.T, h Harness) {
	rt := newRuntime(t, h)
	fn := h.Fixture(t, Upper)
	for _, in := range []string{"hello, World 123", "", "ALREADY upper\nline two\n"} {
		_, out, err := Invoke(t.Context(), rt, fn, nil, strings.NewReader(in), int64(len(in)), runtime.Limits{})
		if err != nil {
			t.Fatalf("Invoke(%q): %v", in, err)
		}
		if want := strings.ToUpper(in); string(out) != want {
			t.Errorf("Invoke(%q) output = %q, want %q", in, out, want)
		}
	}
}

// letters returns n bytes of mixed-case text with newlines.
func letters(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,\n"
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = alphabet[x%uint32(len(alphabet))]
	}
	return b
}

func testUpperStreamed(t *testing.T, h Harness) {
	rt := newRuntime(t, h)
	fn := h.Fixture(t, Upper)
	in := letters(bigInput)
	_, out, err := Invoke(t.Context(), rt, fn, nil, onlyReader{bytes.NewReader(in)}, int64(len(in)), runtime.Limits{})
	if err != nil {
		t.Fatalf("Invoke(5 MiB): %v", err)
	}
	want := bytes.ToUpper(in)
	if len(out) != len(want) {
		t.Fatalf("output is %d bytes, want %d", len(out), len(want))
	}
	if !bytes.Equal(out, want) {
		t.Fatal("5 MiB output differs from the upper-cased input")
	}
}

func testParam(t *testing.T, h Harness) {
	rt := newRuntime(t, h)
	fn := h.Fixture(t, Param)
	params := map[string]string{"greeting": "hi there, ", "other": "x"}
	_, out, err := Invoke(t.Context(), rt, fn, params, strings.NewReader("world"), 5, runtime.Limits{})
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	if want := "hi there, world"; string(out) != want {
		t.Errorf("output = %q, want %q", out, want)
	}
}

// wantClass asserts err is a *runtime.Error of class c and returns it.
func wantClass(t *testing.T, err error, c runtime.Class) *runtime.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("Invoke succeeded, want a %s error", c)
	}
	var re *runtime.Error
	if !errors.As(err, &re) {
		t.Fatalf("Invoke error %v (%T) is not a *runtime.Error", err, err)
	}
	if re.Class != c {
		t.Fatalf("Invoke error class = %q, want %q (error: %v)", re.Class, c, err)
	}
	t.Logf("Invoke error, as expected: %.300s", err)
	return re
}

func testFail(t *testing.T, h Harness) {
	rt := newRuntime(t, h)
	fn := h.Fixture(t, Fail)
	res, _, err := Invoke(t.Context(), rt, fn, nil, strings.NewReader("x"), 1, runtime.Limits{})
	re := wantClass(t, err, runtime.ClassFunction)
	if !strings.Contains(re.Stderr, "boom") && !strings.Contains(res.Logs, "boom") {
		t.Errorf("neither Error.Stderr %q nor Result.Logs %q contains %q", re.Stderr, res.Logs, "boom")
	}
}

// warmUp runs fn once with a short timeout, ignoring the outcome: a
// runtime may compile or unpack code on first use, which the timing
// checks that follow should not count.
func warmUp(t *testing.T, rt runtime.Runtime, fn runtime.Function) {
	t.Helper()
	_, _, _ = Invoke(t.Context(), rt, fn, nil, strings.NewReader("x"), 1, runtime.Limits{Timeout: 100 * time.Millisecond})
}

func testHangTimeout(t *testing.T, h Harness) {
	rt := newRuntime(t, h)
	fn := h.Fixture(t, Hang)
	warmUp(t, rt, fn)
	start := time.Now()
	_, _, err := Invoke(t.Context(), rt, fn, nil, strings.NewReader("x"), 1, runtime.Limits{Timeout: hangTimeout})
	took := time.Since(start)
	wantClass(t, err, runtime.ClassTimeout)
	if took > hangTimeout+stopWithin {
		t.Errorf("Invoke returned after %v, want within %v of the %v timeout", took, stopWithin, hangTimeout)
	}
}

// testHangCancel checks that cancelling ctx stops a running function
// promptly. The error must not be ClassFunction: the function did not
// fail, the caller gave up, and such a failure must never be cached.
func testHangCancel(t *testing.T, h Harness) {
	rt := newRuntime(t, h)
	fn := h.Fixture(t, Hang)
	warmUp(t, rt, fn)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	timer := time.AfterFunc(300*time.Millisecond, cancel)
	defer timer.Stop()
	start := time.Now()
	_, _, err := Invoke(ctx, rt, fn, nil, strings.NewReader("x"), 1, runtime.Limits{Timeout: time.Minute})
	took := time.Since(start)
	if err == nil {
		t.Fatal("Invoke of Hang succeeded after cancel, want an error")
	}
	if c := runtime.ClassOf(err); c == runtime.ClassFunction {
		t.Errorf("cancelled Invoke error has class %q, want any other (error: %v)", c, err)
	}
	if took > stopWithin {
		t.Errorf("Invoke returned %v after start, want within %v of cancel", took, stopWithin)
	}
}

func testHog(t *testing.T, h Harness) {
	rt := newRuntime(t, h)
	fn := h.Fixture(t, Hog)
	_, _, err := Invoke(t.Context(), rt, fn, nil, strings.NewReader("x"), 1,
		runtime.Limits{Timeout: defaultTimeout, MemoryBytes: hogMemory})
	wantClass(t, err, runtime.ClassOOM)
}

func testConcurrent(t *testing.T, h Harness) {
	rt := newRuntime(t, h)
	fn := h.Fixture(t, Upper)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, concurrency)
	for i := range concurrency {
		wg.Go(func() {
			in := fmt.Sprintf("invocation %d: %s", i, strings.Repeat(fmt.Sprintf("abc%d", i), 1000*(i+1)))
			<-start
			_, out, err := Invoke(t.Context(), rt, fn, nil, strings.NewReader(in), int64(len(in)), runtime.Limits{})
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("invocation %d: %w", i, err)
			case string(out) != strings.ToUpper(in):
				errs[i] = fmt.Errorf("invocation %d: output of %d bytes differs from its upper-cased input of %d", i, len(out), len(in))
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func testVersion(t *testing.T, h Harness) {
	rt := newRuntime(t, h)
	v := rt.Version()
	if v == "" {
		t.Fatal("Version() is empty")
	}
	if v2 := rt.Version(); v2 != v {
		t.Errorf("Version() changed between calls: %q then %q", v, v2)
	}
	if v3 := newRuntime(t, h).Version(); v3 != v {
		t.Errorf("Version() differs between runtimes: %q and %q", v, v3)
	}
	if rt.Name() == "" {
		t.Error("Name() is empty")
	}
}
