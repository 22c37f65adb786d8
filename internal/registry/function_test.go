package registry_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/registry"
)

func validFn() registry.Function {
	return registry.Function{
		Name: "thumbnail", Runtime: "wasm", CodeDigest: "abc",
		Trigger: registry.Trigger{Bucket: "images", Suffixes: []string{".jpg", ".PNG"}},
		Output:  registry.Output{Bucket: "thumbnails"},
		Params:  map[string]string{"size": "128"},
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*registry.Function)
		wantErr string
	}{
		{"OK", func(*registry.Function) {}, ""},
		{"BadName", func(f *registry.Function) { f.Name = "a b" }, "function name must match"},
		{"NoRuntime", func(f *registry.Function) { f.Runtime = "" }, "runtime must be set"},
		{"NoBucket", func(f *registry.Function) { f.Trigger.Bucket = "" }, "trigger bucket must be set"},
		{"NoOutput", func(f *registry.Function) { f.Output.Bucket = "" }, "output bucket must be set"},
		{"NegativeTimeout", func(f *registry.Function) { f.Limits.Timeout = -1 }, "limits must be >= 0"},
		{"OverwritesInput", func(f *registry.Function) { f.Output.Bucket = "images" }, "overwrite its own input"},
		{"SameBucketWithTemplate", func(f *registry.Function) { f.Output.Bucket = "images"; f.Output.KeyTemplate = "thumbs/{key}" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := validFn()
			tc.mutate(&f)
			err := f.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if f.Tenant != registry.DefaultTenant || f.Limits.Lease != registry.DefaultLease || f.Version == "" {
					t.Fatalf("defaults not filled: %+v", f)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestVersion_ChangesWithCodeAndParamsOnly(t *testing.T) {
	base := validFn()
	base.Validate()
	same := validFn()
	same.Limits.Timeout = 5e9 // limits do not change outputs
	same.Validate()
	if same.Version != base.Version {
		t.Fatalf("limits changed the version: %s vs %s", same.Version, base.Version)
	}
	for name, mutate := range map[string]func(*registry.Function){
		"code":    func(f *registry.Function) { f.CodeDigest = "def" },
		"params":  func(f *registry.Function) { f.Params["size"] = "64" },
		"runtime": func(f *registry.Function) { f.Runtime = "process" },
		"config":  func(f *registry.Function) { f.Config = map[string]string{"env.X": "1"} },
	} {
		f := validFn()
		mutate(&f)
		f.Validate()
		if f.Version == base.Version {
			t.Errorf("changing %s kept version %s", name, f.Version)
		}
	}
}

// Issue 20: on_input_delete defaults to keep, takes keep or delete, and
// does not change the version (it does not change outputs).
func TestValidate_OnInputDelete(t *testing.T) {
	base := validFn()
	if err := base.Validate(); err != nil || base.OnInputDelete != registry.OnInputDeleteKeep {
		t.Fatalf("default: on_input_delete %q, %v; want %q", base.OnInputDelete, err, registry.OnInputDeleteKeep)
	}
	f := validFn()
	f.OnInputDelete = registry.OnInputDeleteDelete
	if err := f.Validate(); err != nil || f.OnInputDelete != registry.OnInputDeleteDelete {
		t.Fatalf("delete: on_input_delete %q, %v", f.OnInputDelete, err)
	}
	if f.Version != base.Version {
		t.Errorf("on_input_delete changed the version: %s vs %s", f.Version, base.Version)
	}
	f = validFn()
	f.OnInputDelete = "purge"
	if err := f.Validate(); err == nil || !errors.Is(err, registry.ErrInvalid) ||
		err.Error() != `function thumbnail: on_input_delete must be "keep" or "delete", got "purge"` {
		t.Fatalf("purge: %v", err)
	}
	b, _ := json.Marshal(f)
	if !strings.Contains(string(b), `"on_input_delete":"purge"`) {
		t.Errorf("JSON %s does not name on_input_delete", b)
	}
}

func TestMatches(t *testing.T) {
	f := validFn()
	f.Trigger.Prefix = "a/"
	for key, want := range map[string]bool{
		"a/cat.jpg": true, "a/CAT.JPG": true, "a/dog.png": true, "a/doc.pdf": false, "b/cat.jpg": false,
	} {
		if got := f.Matches("images", key); got != want {
			t.Errorf("Matches(images, %q) = %v, want %v", key, got, want)
		}
	}
	if f.Matches("other", "a/cat.jpg") {
		t.Error("matched another bucket")
	}
}

func TestOutputKey(t *testing.T) {
	f := validFn()
	for tmpl, want := range map[string]string{
		"{key}":                  "a/b/cat.jpg",
		"thumbs/{dir}{base}.jpg": "thumbs/a/b/cat.jpg",
		"{name}/{base}{ext}":     "thumbnail/cat.jpg",
	} {
		f.Output.KeyTemplate = tmpl
		if got, err := f.OutputKey("a/b/cat.jpg"); err != nil || got != want {
			t.Errorf("OutputKey with %q = %q, %v, want %q", tmpl, got, err, want)
		}
	}
}

// Reliability item 13: templates that overwrite the input are refused at
// deploy, whatever their spelling; "." and empty segments are normalized;
// ".." is refused.
func TestOutputKey_TemplatesCanOverwriteInputOrCollide(t *testing.T) {
	for _, tmpl := range []string{"{key}", "{dir}{base}{ext}", "./{key}", "/{key}", "{dir}/{base}{ext}", ".//{key}"} {
		f := validFn()
		f.Output.Bucket = f.Trigger.Bucket
		f.Output.KeyTemplate = tmpl
		err := f.Validate()
		if err == nil || !strings.Contains(err.Error(), "overwrite its own input") {
			t.Errorf("template %q with output bucket = input bucket: Validate() = %v, want refusal", tmpl, err)
		}
	}
	f := validFn()
	for tmpl, want := range map[string]string{
		"./thumbs/{key}": "thumbs/a/b/cat.jpg",
		"/thumbs//{key}": "thumbs/a/b/cat.jpg",
	} {
		f.Output.KeyTemplate = tmpl
		if got, err := f.OutputKey("a/b/cat.jpg"); err != nil || got != want {
			t.Errorf("OutputKey with %q = %q, %v, want %q", tmpl, got, err, want)
		}
	}
	for _, tmpl := range []string{"../{key}", "thumbs/../{key}", "{dir}"} {
		f.Output.KeyTemplate = tmpl
		if got, err := f.OutputKey("a/b/cat.jpg"); err == nil {
			t.Errorf("OutputKey with %q = %q, want an error", tmpl, got)
		}
		if err := f.Validate(); err == nil {
			t.Errorf("Validate with template %q passed", tmpl)
		}
	}
}

func TestKey_ScopedPerTenant(t *testing.T) {
	a, b := validFn(), validFn()
	a.Tenant, b.Tenant = "acme", "globex"
	ka, pa := a.Key("abc", "wasm/1", "sha256:00")
	kb, _ := b.Key("abc", "wasm/1", "sha256:00")
	if ka == kb {
		t.Fatal("two tenants share a dedup key: one could probe the other's content")
	}
	if registry.PartsKey(pa) != ka {
		t.Fatal("PartsKey does not reproduce the key from its parts")
	}
	a.Shared, b.Shared = true, true
	ka, _ = a.Key("abc", "wasm/1", "sha256:00")
	kb, _ = b.Key("abc", "wasm/1", "sha256:00")
	if ka != kb {
		t.Fatal("shared functions do not share keys across tenants")
	}
	for name, k := range map[string]string{
		"runtime":     first(a.Key("abc", "wasm/2", "sha256:00")),
		"fingerprint": first(a.Key("abc", "wasm/1", "sha256:01")),
		"code":        first(a.Key("abd", "wasm/1", "sha256:00")),
	} {
		if k == ka {
			t.Errorf("changing the %s kept the key", name)
		}
	}
}

func first[A, B any](a A, _ B) A { return a }

// Issue 19 item 2: an output-key template is checked at deploy. Unknown
// placeholders and unbalanced braces are refused with the problem named
// and the placeholders listed (they were rendered literally: an object
// named "{nope}/{key"), and so is a template that does not determine the
// input key, whose outputs would collide ("{dir}{name}.json" put every
// input of a folder at one key).
func TestValidate_OutputKeyTemplateChecked(t *testing.T) {
	for tmpl, want := range map[string][]string{
		"{nope}/{key":        {"unknown placeholder {nope}", `unclosed "{"`, "{key} {dir} {base} {ext} {name}"},
		"out/{key}}":         {`"}" without a "{"`},
		"out/{k{ey}":         {`unclosed "{"`},
		"{}{key}":            {"unknown placeholder {}"},
		"{KEY}":              {"unknown placeholder {KEY}"},
		"{dir}{name}.json":   {"does not determine the input key", "{key}"},
		"{base}{ext}":        {"does not determine the input key"},
		"thumbs/{dir}{base}": {"does not determine the input key", "{ext}"},
		"{name}":             {"does not determine the input key"},
		"static.txt":         {"does not determine the input key"},
	} {
		f := validFn()
		f.Output.KeyTemplate = tmpl
		err := f.Validate()
		if err == nil {
			t.Errorf("template %q: Validate passed, want a refusal", tmpl)
			continue
		}
		if !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("template %q: error %v does not wrap ErrInvalid (a 400)", tmpl, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("template %q: error %q does not contain %q", tmpl, err, w)
			}
		}
	}
	// Every template the docs, tests and examples deploy still passes.
	for _, tmpl := range []string{"", "{key}", "out/{key}", "thumbs/{key}", "{name}/{key}", "acme/{key}",
		"{dir}{base}{ext}.out", "thumbs/{dir}{base}{ext}.jpg", "{name}/{dir}{base}-small{ext}", "{key}.json"} {
		f := validFn()
		f.Output.KeyTemplate = tmpl
		if err := f.Validate(); err != nil {
			t.Errorf("template %q: Validate: %v", tmpl, err)
		}
	}
}
