package owtest_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/runtime/openwhisk/owtest"
	"github.com/dedupfn/dedupfn/internal/testutil"
)

// TestOfficialJSClient validates the in-test controller against the
// official OpenWhisk JavaScript client (scripts/peers/openwhisk-npm.sh).
func TestOfficialJSClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testutil.Missing(t, "node not on PATH")
	}
	modules := filepath.Join(testutil.ToolsDir(t), "openwhisk-js", "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "openwhisk", "package.json")); err != nil {
		testutil.Missing(t, "npm package openwhisk in "+modules+" (scripts/peers/openwhisk-npm.sh)")
	}
	s := owtest.New()
	t.Cleanup(s.Close)
	s.Register("always-fails", func(context.Context, map[string]any, func(string, ...any)) (map[string]any, error) {
		return nil, errors.New("this action always fails")
	})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(testutil.RepoRoot(t), "test", "openwhisk-js", "validate.js"))
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+modules,
		"OW_APIHOST="+srv.URL,
		"OW_AUTH="+s.Auth,
		"OW_FAIL_ACTION=always-fails",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("validate.js:\n%s", out)
	if err != nil {
		t.Fatalf("validate.js: %v", err)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(out)), "validate: ok") {
		t.Fatal("validate.js did not report ok")
	}
	if n := s.Invokes("always-fails"); n != 1 {
		t.Fatalf("always-fails invoked %d times, want 1", n)
	}
	a, ok := s.Action("validate-" + strconv.Itoa(cmd.ProcessState.Pid()))
	if !ok || a.Version != "0.0.2" || a.Exec.Kind != "nodejs:20" {
		t.Fatalf("action after validate.js = %+v (found %v), want version 0.0.2 of kind nodejs:20", a, ok)
	}
}
