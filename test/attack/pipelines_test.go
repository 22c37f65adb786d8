package attack

import (
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// Attacks on pipelines (issue 20): deletes that follow their inputs, and
// the provenance that decides which outputs those are.
func TestPipelineAttacks(t *testing.T) {
	t.Run("SharedDeleteReachesOnlyOwnOutputs", attackSharedDelete)
	t.Run("DeleteSparesReplacedOutput", attackDeleteReplacedOutput)
}

// deleting copies a shared copy function with --on-input-delete delete.
func deleting(t *testing.T, s *server, token, tenant string) {
	req := copyFn(t, "sh", tenant+"-in", "sh/", tenant+"-out", true)
	req.Function.OnInputDelete = registry.OnInputDeleteDelete
	mustDeploy(t, s.client(token), req)
}

func isDelete(bucket, key string) func(activation.Record) bool {
	return func(r activation.Record) bool {
		return r.Decision == activation.Delete && r.Event.Bucket == bucket && r.Event.Key == key
	}
}

// globex shares acme's result (a hit of the shared function), then deletes
// its own input: only globex's output goes. Then acme deletes its input,
// whose output the shared record points to: acme's output goes, and the
// record is re-pointed to globex's live copy or dropped; either way
// globex's next upload of the content gets the right bytes.
func attackSharedDelete(t *testing.T) {
	s := startServer(t)
	deleting(t, s, acmeToken, "acme")
	deleting(t, s, globexToken, "globex")
	data := []byte("quarterly numbers")
	s.put("acme-in", "sh/q.txt", data, nil)
	s.waitActivations(1, time.Minute, onKey("acme-in", "sh/q.txt"))
	s.put("globex-in", "sh/mine.txt", data, nil)
	s.put("globex-in", "sh/keep.txt", data, nil)
	s.waitActivations(1, time.Minute, onKey("globex-in", "sh/keep.txt"))
	s.waitActivations(1, time.Minute, onKey("globex-in", "sh/mine.txt"))

	if err := s.minio().RemoveObject(t.Context(), "globex-in", "sh/mine.txt", minioRemove); err != nil {
		t.Fatal(err)
	}
	s.waitActivations(1, 30*time.Second, isDelete("globex-in", "sh/mine.txt"))
	acmeOut, globexGone := s.get("acme-out", "sh/q.txt"), s.get("globex-out", "sh/mine.txt")

	if err := s.minio().RemoveObject(t.Context(), "acme-in", "sh/q.txt", minioRemove); err != nil {
		t.Fatal(err)
	}
	s.waitActivations(1, 30*time.Second, isDelete("acme-in", "sh/q.txt"))
	acmeGone, globexKept := s.get("acme-out", "sh/q.txt"), s.get("globex-out", "sh/keep.txt")
	s.put("globex-in", "sh/again.txt", data, nil)
	s.waitActivations(1, time.Minute, onKey("globex-in", "sh/again.txt"))
	again := s.get("globex-out", "sh/again.txt")

	report(t, "each delete takes its tenant's output only",
		fmt.Sprintf("after globex's: acme %s, globex %s; after acme's: acme %s, globex %s; next upload %s",
			short(acmeOut), short(globexGone), short(acmeGone), short(globexKept), short(again)))
	if string(acmeOut) != string(data) || globexGone != nil || acmeGone != nil || string(globexKept) != string(data) || string(again) != string(data) {
		t.Errorf("deletes crossed tenants or lost data: acme-out %q, globex's deleted %q, acme's deleted %q, globex kept %q, next %q",
			acmeOut, globexGone, acmeGone, globexKept, again)
	}
}

// The user replaces an output with their own bytes, then deletes the
// input: the index says dedupfn wrote that key, but the bytes there are
// no longer what it wrote, so the user's object stays.
func attackDeleteReplacedOutput(t *testing.T) {
	s := startServer(t)
	deleting(t, s, acmeToken, "acme")
	s.put("acme-in", "sh/report.txt", []byte("draft"), nil)
	s.waitActivations(1, time.Minute, onKey("acme-in", "sh/report.txt"))
	mine := []byte("my own final version")
	s.put("acme-out", "sh/report.txt", mine, nil)
	if err := s.minio().RemoveObject(t.Context(), "acme-in", "sh/report.txt", minioRemove); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a delete would have happened by now
	got := s.get("acme-out", "sh/report.txt")
	n := len(s.waitActivations(0, time.Second, isDelete("acme-in", "sh/report.txt")))
	report(t, "user's object stays", fmt.Sprintf("output %s, %d delete activations", short(got), n))
	if string(got) != string(mine) || n != 0 {
		t.Errorf("the user's own object at the output key: %q, %d delete activations; want it kept, none", got, n)
	}
}

var minioRemove = minio.RemoveObjectOptions{}
