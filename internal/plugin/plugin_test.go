package plugin_test

import (
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/plugin"
)

func TestRegistry(t *testing.T) {
	r := plugin.New[int]("things")
	r.Register("a", 1)
	r.Register("b", 2)
	v, u, err := r.Lookup("b://host/path")
	if err != nil || v != 2 || u.Host != "host" {
		t.Fatalf("Lookup = %d %v %v", v, u, err)
	}
	_, _, err = r.Lookup("zzz://user:secret@host")
	if err == nil || !strings.Contains(err.Error(), `unknown scheme "zzz"`) || !strings.Contains(err.Error(), "a:, b:") {
		t.Fatalf("unknown scheme error = %v, want it to list a:, b:", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestRegisterPanics(t *testing.T) {
	for name, scheme := range map[string]string{"Empty": "", "Duplicate": "a"} {
		t.Run(name, func(t *testing.T) {
			r := plugin.New[int]("things")
			r.Register("a", 1)
			defer func() {
				if recover() == nil {
					t.Fatalf("Register(%q) did not panic", scheme)
				}
			}()
			r.Register(scheme, 2)
		})
	}
}

func TestRedact(t *testing.T) {
	if got := plugin.Redact("couchdb://admin:hunter2@db:5984/x"); strings.Contains(got, "hunter2") {
		t.Fatalf("Redact = %s", got)
	}
	if got := plugin.Redact("embedded:"); got != "embedded:" {
		t.Fatalf("Redact(embedded:) = %s", got)
	}
}
