package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/errgroup"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/api"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// server is the `dedupfn serve` subprocess of a bench run.
type server struct {
	dir     string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
	s3, api string
	client  *api.Client
	mc      *minio.Client
	profile string
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startServer(ctx context.Context, o Options, prog *reporter) (_ *server, err error) {
	exe := o.Serve
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find this binary: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "dedupfn-bench-*")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, logPath: filepath.Join(dir, "serve.log"), exited: make(chan struct{}), profile: o.CPUProfile}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.s3, err = freeLoopbackAddr(); err != nil {
		return nil, err
	}
	if s.api, err = freeLoopbackAddr(); err != nil {
		return nil, err
	}
	args := []string{"serve", "--data", filepath.Join(dir, "data"), "--s3-addr", s.s3, "--api-addr", s.api}
	for _, b := range []string{rawBucket, inBucket, outBucket, baseBucket, baseOutBucket} {
		args = append(args, "--create-bucket", b)
	}
	if s.profile != "" {
		args = append(args, "--"+ProfileSignalsFlag+"="+s.profile)
	}
	args = append(args, o.ServeArgs...)
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	s.cmd = exec.Command(exe, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// A hermetic serve: the quickstart credentials on loopback, no
	// token, tenants or faults from this shell's environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEDUPFN_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	s.cmd.Env = append(s.cmd.Env, "DEDUPFN_ACCESS_KEY="+o.AccessKey, "DEDUPFN_SECRET_KEY="+o.SecretKey)
	prog.line("starting %s (data in %s)", strings.Join(append([]string{filepath.Base(exe)}, args...), " "), dir)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start serve: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	s.client = &api.Client{BaseURL: "http://" + s.api}
	s.mc, err = minio.New(s.s3, &minio.Options{
		Creds: credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""), Region: "us-east-1",
	})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.api + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("serve exited at start: %s", s.logTail())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("serve not ready after 30s: %s", s.logTail())
		}
	}
}

// stop ends serve (it drains first) and removes the data dir. Safe twice.
func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exited:
		case <-time.After(45 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
		s.cmd = nil
	}
	os.RemoveAll(s.dir)
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "serve log:\n" + strings.Join(lines, "\n")
}

// put uploads every upload to bucket with o.Uploaders at once, reporting
// each done as stage's progress.
func (s *server) put(ctx context.Context, o Options, bucket string, uploads []upload, contents [][]byte, prog *reporter, stage string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Uploaders)
	var done atomic.Int64
	total := int64(len(uploads))
	for _, u := range uploads {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			body := contents[u.content]
			if _, err := s.mc.PutObject(gctx, bucket, u.key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
				return fmt.Errorf("put %s/%s: %w", bucket, u.key, err)
			}
			prog.report(Step{Stage: stage, Done: done.Add(1), Total: total})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// waitEvents polls the API until the events total reaches want, reporting
// those past base as stage's progress.
func (s *server) waitEvents(ctx context.Context, want, base int64, prog *reporter, stage string) (activation.Stats, error) {
	deadline := time.Now().Add(phaseTimeout)
	last, lastChange := int64(-1), time.Now()
	for {
		st, err := s.client.Stats(ctx)
		if err != nil {
			return st, err
		}
		prog.report(Step{Stage: stage, Done: st.Events - base, Total: want - base})
		if st.Events >= want {
			return st, nil
		}
		if st.Events != last {
			last, lastChange = st.Events, time.Now()
		}
		if time.Since(lastChange) > stall {
			return st, fmt.Errorf("no activation recorded for %s: %d of %d recorded", stall, st.Events-base, want-base)
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("timed out after %s: %d of %d activations recorded", phaseTimeout, st.Events-base, want-base)
		}
		select {
		case <-s.exited:
			return st, errors.New("serve exited during the run")
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(poll):
		}
	}
}

func (s *server) deploy(ctx context.Context, name, bucket, out string, noDedup bool, code []byte) error {
	fn := registry.Function{
		Name: name, Runtime: "wasm", NoDedup: noDedup,
		Trigger: registry.Trigger{Bucket: bucket}, Output: registry.Output{Bucket: out, KeyTemplate: "{key}"},
		Limits:      registry.Limits{Timeout: registry.DefaultTimeout, Lease: registry.DefaultLease, MemoryMB: registry.DefaultMemoryMB},
		MaxAttempts: registry.DefaultMaxAttempts,
	}
	if _, err := s.client.Deploy(ctx, api.DeployRequest{Function: fn, Code: code}); err != nil {
		return fmt.Errorf("deploy %s: %w", name, err)
	}
	return nil
}

// phase uploads the workload to a bucket and, when triggered, waits until
// every upload has its activation. It returns the upload time, the time
// until the last activation and the stats totals added meanwhile.
func (s *server) phase(ctx context.Context, o Options, prog *reporter, name, bucket string, triggered bool,
	uploads []upload, contents [][]byte) (up, wall time.Duration, delta activation.Stats, err error) {
	before, err := s.client.Stats(ctx)
	if err != nil {
		return 0, 0, delta, err
	}
	n := int64(len(uploads))
	stage := name + ": PUT"
	prog.report(Step{Stage: stage, Total: n})
	start := time.Now()
	if err := s.put(ctx, o, bucket, uploads, contents, prog, stage); err != nil {
		return 0, 0, delta, fmt.Errorf("%s: %w", name, err)
	}
	up = time.Since(start)
	prog.line("%s: %d PUTs in %s (%.0f/s)", name, len(uploads), up.Round(time.Millisecond), float64(len(uploads))/up.Seconds())
	if !triggered {
		return up, up, delta, nil
	}
	stage = name + ": recorded"
	prog.report(Step{Stage: stage, Total: n})
	after, err := s.waitEvents(ctx, before.Events+n, before.Events, prog, stage)
	if err != nil {
		return 0, 0, delta, fmt.Errorf("%s: %w", name, err)
	}
	wall = time.Since(start)
	prog.line("%s: %d activations recorded %s after the first upload (%.0f/s)", name, len(uploads), wall.Round(time.Millisecond), float64(len(uploads))/wall.Seconds())
	delta = activation.Stats{
		Events: after.Events - before.Events, Runs: after.Runs - before.Runs, Hits: after.Hits - before.Hits,
		Waits: after.Waits - before.Waits, Errors: after.Errors - before.Errors, FunctionMS: after.FunctionMS - before.FunctionMS,
	}
	return up, wall, delta, nil
}

// startProfile asks serve to start its CPU profile.
func (s *server) startProfile() error {
	if s.profile == "" {
		return nil
	}
	os.Remove(s.profile)
	return s.cmd.Process.Signal(cpuProfileStart)
}

// stopProfile asks serve to write the profile and waits until it has.
func (s *server) stopProfile(ctx context.Context) error {
	if s.profile == "" {
		return nil
	}
	if err := s.cmd.Process.Signal(cpuProfileStop); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(s.profile); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve wrote no CPU profile to %s in 30s", s.profile)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
