package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/testutil"
	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// quickstart is scripts/quickstart.sh (`make run`) running in a scratch
// checkout: the real script, with bin/ holding the binaries TestMain
// built, and its ./data in a temp dir.
type quickstart struct {
	t   *testing.T
	cmd *exec.Cmd
	out *bytes.Buffer // stdout and stderr
	mu  *sync.Mutex
}

func startQuickstart(t *testing.T, s3Addr, apiAddr string) *quickstart {
	t.Helper()
	root := t.TempDir()
	script, err := os.ReadFile("../../scripts/quickstart.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"scripts", "bin"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "scripts", "quickstart.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"dedupfn": harness.Dedupfn, "thumbnail.wasm": harness.Thumbnail} {
		if err := os.Symlink(target, filepath.Join(root, "bin", name)); err != nil {
			t.Fatal(err)
		}
	}
	q := &quickstart{t: t, out: &bytes.Buffer{}, mu: &sync.Mutex{}}
	w := harness.LockedWriter{Mu: q.mu, B: q.out}
	q.cmd = exec.Command("bash", filepath.Join(root, "scripts", "quickstart.sh"))
	// Its own process group, as a terminal's job would be: Ctrl-C (a
	// SIGINT to the group) reaches the script and serve alike.
	q.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	q.cmd.Env = append(os.Environ(), "DEDUPFN_S3_ADDR="+s3Addr, "DEDUPFN_API_ADDR="+apiAddr,
		// A stale DEDUPFN_API must not redirect the script's own calls.
		"DEDUPFN_API=http://127.0.0.1:1")
	q.cmd.Stdout, q.cmd.Stderr = w, w
	if err := q.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
		q.cmd.Wait()
		if t.Failed() {
			t.Logf("quickstart output:\n%s", q.output())
		}
	})
	return q
}

func (q *quickstart) output() string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.out.String()
}

// wait waits for the script to exit and returns its exit code.
func (q *quickstart) wait(timeout time.Duration) int {
	q.t.Helper()
	done := make(chan error, 1)
	go func() { done <- q.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			q.t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		q.t.Fatalf("quickstart still running after %s", timeout)
		return -1
	}
}

// functions lists the function names the dedupfn at apiAddr holds.
func functions(t *testing.T, apiAddr string) []string {
	t.Helper()
	cmd := exec.Command(harness.Dedupfn, "fn", "list", "--json")
	cmd.Env = append(os.Environ(), "DEDUPFN_API=http://"+apiAddr)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fn list on %s: %v\n%s", apiAddr, err, out)
	}
	var fns []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(out, &fns); err != nil {
		t.Fatalf("fn list --json: %v\n%s", err, out)
	}
	var names []string
	for _, f := range fns {
		names = append(names, f.Name)
	}
	return names
}

// TestQuickstart_PortTakenTouchesNoOtherServer is issue 19 item 1: when
// `make run`'s serve cannot bind, the script stops with one line saying
// why and deploys nothing, even though another dedupfn answers /healthz
// on the API address it asked for.
func TestQuickstart_PortTakenTouchesNoOtherServer(t *testing.T) {
	t.Parallel()
	other := harness.StartServer(t, t.TempDir())
	for _, tt := range []struct {
		name, taken string
		addrs       func(taken string) (s3, api string)
	}{
		// The case: something holds the S3 port, another dedupfn
		// the API port.
		{"S3PortTaken", "", func(taken string) (string, string) { return taken, other.API }},
		// The API port is the other dedupfn's: serve fails to listen there.
		{"APIPortTaken", other.API, func(string) (string, string) { return testutil.FreeAddr(t), other.API }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			taken := tt.taken
			if taken == "" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				taken = ln.Addr().String()
			}
			s3, api := tt.addrs(taken)
			q := startQuickstart(t, s3, api)
			if code := q.wait(60 * time.Second); code == 0 {
				t.Fatalf("quickstart exited 0 with %s taken", taken)
			}
			out := q.output()
			if strings.Contains(out, "dedupfn is running") {
				t.Errorf("quickstart said it is running with %s taken", taken)
			}
			last := lastLine(out)
			for _, w := range []string{"quickstart:", taken, "address already in use", "nothing was deployed"} {
				if !strings.Contains(last, w) {
					t.Errorf("last line %q lacks %q", last, w)
				}
			}
			if fns := functions(t, other.API); len(fns) != 0 {
				t.Fatalf("the other dedupfn on %s got functions %v", other.API, fns)
			}
		})
	}
}

// TestQuickstart_CustomAddresses is issue 19 item 1: DEDUPFN_S3_ADDR and
// DEDUPFN_API_ADDR choose the addresses; the script comes up on them,
// deploys there, and the commands it prints use them.
func TestQuickstart_CustomAddresses(t *testing.T) {
	t.Parallel()
	s3, api := testutil.FreeAddr(t), testutil.FreeAddr(t)
	q := startQuickstart(t, s3, api)
	testutil.Eventually(t, 60*time.Second, "quickstart ready", func() bool {
		if q.cmd.ProcessState != nil {
			t.Fatalf("quickstart exited early")
		}
		return strings.Contains(q.output(), "Press Ctrl-C to stop.")
	})
	out := q.output()
	for _, w := range []string{
		"S3 endpoint http://" + s3,
		"API and dashboard http://" + api,
		"aws --endpoint-url http://" + s3 + " s3 cp",
		"export DEDUPFN_API=http://" + api,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if strings.Contains(out, "127.0.0.1:9000") || strings.Contains(out, "127.0.0.1:8080") {
		t.Errorf("output names a default address")
	}
	if fns := functions(t, api); len(fns) != 1 || fns[0] != "thumbnail" {
		t.Fatalf("functions on %s: %v, want [thumbnail]", api, fns)
	}
	// The instance the script checked is the one serve logged.
	resp, err := http.Get("http://" + api + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("X-Dedupfn-Instance")
	serving := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "dedupfn serving") {
			serving = l
		}
	}
	if id == "" || !strings.Contains(serving, id) {
		t.Errorf("healthz instance %q is not in serve's start line %q", id, serving)
	}
	// Ctrl-C: serve drains, the script exits 0.
	syscall.Kill(-q.cmd.Process.Pid, syscall.SIGINT)
	if code := q.wait(60 * time.Second); code != 0 {
		t.Fatalf("quickstart exited %d after Ctrl-C", code)
	}
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}
