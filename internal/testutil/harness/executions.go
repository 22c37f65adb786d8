package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"
)

// StageOut is what one run of ChaosAction makes of body.
func StageOut(body []byte) []byte { return bytes.ToUpper(body) }

// ChainFn deploys ChaosAction through s as name, from bucket in to
// bucket out, appending its executions to the side file log, with
// --on-input-delete policy (none: the default) and any extra flags.
func ChainFn(s *Server, name, in, out, log, policy string, extra ...string) string {
	s.T.Helper()
	args := []string{"fn", "deploy", name, "--exec", ChaosAction, "--bucket", in, "--output-bucket", out,
		"--param", "log=" + log, "--param", "ms=0",
		"--memory", "1536"} // RLIMIT_AS: a Go runtime reserves ~1 GiB of address space at start
	if policy != "" {
		args = append(args, "--on-input-delete", policy)
	}
	return s.CLI(append(args, extra...)...)
}

// ObjectsIn lists a bucket's keys with their bodies.
func ObjectsIn(t testing.TB, mc *minio.Client, bucket string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for o := range mc.ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		obj, err := mc.GetObject(t.Context(), bucket, o.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(obj)
		obj.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			continue // deleted since the listing
		}
		if err != nil {
			t.Fatalf("read %s/%s: %v", bucket, o.Key, err)
		}
		out[o.Key] = string(b)
	}
	return out
}

// Execution is one run of ChaosAction, from its side file.
type Execution struct {
	Pid, Ppid, Gppid int
	Start, End       int // line numbers; End -1 = never ended
}

// ReadExecutions parses a side file, "start|end SHA PID PPID GPPID" per
// line, into the executions of each content.
func ReadExecutions(t testing.TB, path string) map[string][]*Execution {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("side file: %v", err)
	}
	defer f.Close()
	byContent := map[string][]*Execution{}
	byPid := map[int]*Execution{}
	sc := bufio.NewScanner(f)
	for line := 0; sc.Scan(); line++ {
		var what, content string
		var pid, ppid, gppid int
		if _, err := fmt.Sscan(sc.Text(), &what, &content, &pid, &ppid, &gppid); err != nil {
			t.Fatalf("side file line %d %q: %v", line, sc.Text(), err)
		}
		switch what {
		case "start":
			e := &Execution{Pid: pid, Ppid: ppid, Gppid: gppid, Start: line, End: -1}
			byContent[content] = append(byContent[content], e)
			byPid[pid] = e // an action process runs one activation at a time
		case "end":
			e := byPid[pid]
			if e == nil || e.End >= 0 {
				t.Fatalf("side file line %d: end without a start: %q", line, sc.Text())
			}
			e.End = line
		}
	}
	return byContent
}
