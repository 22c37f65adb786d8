package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuild_SameSourceTwoFoldersSameDigest is issue 19 item 4: the
// Makefile's build of this example, run in two checkouts at different
// paths, gives byte-identical modules, so both are one function version
// and share recorded results.
func TestBuild_SameSourceTwoFoldersSameDigest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the example to wasm twice")
	}
	// The Makefile's own recipe for bin/thumbnail.wasm.
	plan, err := exec.Command("make", "-C", "../..", "-n", "-s", "build").Output()
	if err != nil {
		t.Fatalf("make -n build: %v", err)
	}
	var recipe string
	for _, l := range strings.Split(string(plan), "\n") {
		if strings.Contains(l, "thumbnail.wasm") && strings.Contains(l, "go build") {
			recipe = l
		}
	}
	if recipe == "" {
		t.Fatalf("make -n build has no thumbnail.wasm build:\n%s", plan)
	}

	digests := map[string]string{}
	for _, name := range []string{"checkout-a", "deeper/checkout-b"} {
		root := filepath.Join(t.TempDir(), name)
		for _, f := range []string{"go.mod", "go.sum", "examples/thumbnail/main.go"} {
			b, err := os.ReadFile(filepath.Join("../..", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("bash", "-c", recipe)
		cmd.Dir = root
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s in %s: %v\n%s", recipe, root, err, stderr.String())
		}
		wasm, err := os.ReadFile(filepath.Join(root, "bin", "thumbnail.wasm"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(wasm)
		digests[name] = hex.EncodeToString(sum[:])
	}
	if digests["checkout-a"] != digests["deeper/checkout-b"] {
		t.Fatalf("%q built in two folders: sha256 %s and %s", recipe, digests["checkout-a"], digests["deeper/checkout-b"])
	}
}
