package registry_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/registry"
)

// stage is a function of tenant "t" triggered by bucket in (prefix, any
// of suffixes) writing to bucket out under template tmpl ("" = {key}).
func stage(name, in, prefix, out, tmpl string, suffixes ...string) registry.Function {
	return registry.Function{
		Tenant: "t", Name: name, Runtime: "wasm",
		Trigger: registry.Trigger{Bucket: in, Prefix: prefix, Suffixes: suffixes},
		Output:  registry.Output{Bucket: out, KeyTemplate: tmpl},
	}
}

func names(fns []registry.Function) []string {
	out := make([]string, len(fns))
	for i, f := range fns {
		out[i] = f.Name
	}
	return out
}

func TestFeeds(t *testing.T) {
	for _, tc := range []struct {
		name string
		f, g registry.Function
		want bool
	}{
		{"SameBucketAnyKey", stage("f", "a", "", "b", ""), stage("g", "b", "", "c", ""), true},
		{"OtherBucket", stage("f", "a", "", "b", ""), stage("g", "x", "", "c", ""), false},
		{"LiteralPrefixMatches", stage("f", "a", "", "b", "small/{key}"), stage("g", "b", "small/", "c", ""), true},
		{"LiteralPrefixShorterTrigger", stage("f", "a", "", "b", "small/{key}"), stage("g", "b", "sm", "c", ""), true},
		{"LiteralPrefixLongerTrigger", stage("f", "a", "", "b", "small/{key}"), stage("g", "b", "small/x/", "c", ""), true},
		{"LiteralPrefixDiffers", stage("f", "a", "", "b", "small/{key}"), stage("g", "b", "large/", "c", ""), false},
		{"KeyCarriesTriggerPrefix", stage("f", "a", "in/", "b", ""), stage("g", "b", "out/", "c", ""), false},
		{"KeyCarriesTriggerPrefixMatch", stage("f", "a", "in/", "b", ""), stage("g", "b", "in/x", "c", ""), true},
		{"LiteralThenKeyPrefix", stage("f", "a", "2024/", "b", "t/{key}"), stage("g", "b", "t/2023/", "c", ""), false},
		{"DirTakesPrefixToSlash", stage("f", "a", "photos/2024", "b", "{dir}{base}{ext}.png"), stage("g", "b", "photos/", "c", ""), true},
		{"DirPrefixDiffers", stage("f", "a", "photos/2024", "b", "{dir}{base}{ext}.png"), stage("g", "b", "photos/2023/", "c", ""), true},
		{"DirPrefixOtherFolder", stage("f", "a", "photos/2024", "b", "{dir}{base}{ext}.png"), stage("g", "b", "other/", "c", ""), false},
		{"DirBasePNG", stage("f", "a", "", "b", "{dir}{base}{ext}.png", ".jpg"), stage("g", "b", "", "c", "", ".png"), true},
		{"DirBasePNGNotJPG", stage("f", "a", "", "b", "{dir}{base}{ext}.png", ".jpg"), stage("g", "b", "", "c", "", ".jpg"), false},
		{"ExtLastKeepsTriggerSuffix", stage("f", "a", "", "b", "t/{dir}{base}{ext}", ".jpg"), stage("g", "b", "", "c", "", ".png"), false},
		{"ExtLastMatchesTriggerSuffix", stage("f", "a", "", "b", "t/{dir}{base}{ext}", ".jpg"), stage("g", "b", "", "c", "", ".JPG"), true},
		{"ExtLastUnknownWithoutDot", stage("f", "a", "", "b", "t/{dir}{base}{ext}", "jpg"), stage("g", "b", "", "c", "", ".png"), true},
		{"KeySuffix", stage("f", "a", "", "b", "", ".jpg"), stage("g", "b", "", "c", "", ".jpg"), true},
		{"KeySuffixCaseInsensitive", stage("f", "a", "", "b", "", ".jpg"), stage("g", "b", "", "c", "", ".JPG"), true},
		{"KeySuffixShorterTrigger", stage("f", "a", "", "b", "", ".jpg"), stage("g", "b", "", "c", "", "g"), true},
		{"KeySuffixDiffers", stage("f", "a", "", "b", "", ".jpg"), stage("g", "b", "", "c", "", ".png"), false},
		{"KeySuffixAnyOf", stage("f", "a", "", "b", "", ".jpg", ".png"), stage("g", "b", "", "c", "", ".gif", ".png"), true},
		{"KeyThenLiteral", stage("f", "a", "", "b", "{key}.png", ".jpg"), stage("g", "b", "", "c", "", ".png"), true},
		{"KeyThenLiteralNotInner", stage("f", "a", "", "b", "{key}.png", ".jpg"), stage("g", "b", "", "c", "", ".jpg"), false},
		{"KeyWithoutSuffixesUnknown", stage("f", "a", "", "b", "{key}"), stage("g", "b", "", "c", "", ".png"), true},
		// A function that writes no output stream stores its result at KEY.json.
		{"ResultKeyJSON", stage("f", "a", "", "b", "", ".jpg"), stage("g", "b", "", "c", "", ".json"), true},
		{"ResultKeyJSONOfTemplate", stage("f", "a", "", "b", "{key}.txt", ".pdf"), stage("g", "b", "", "c", "", ".txt.json"), true},
		{"ResultKeyNotOtherSuffix", stage("f", "a", "", "b", "{key}.txt", ".pdf"), stage("g", "b", "", "c", "", ".pdf.json"), false},
		{"NameIsKnown", stage("thumb", "a", "", "b", "{name}/{key}"), stage("g", "b", "thumb/", "c", ""), true},
		{"NameIsKnownDiffers", stage("thumb", "a", "", "b", "{name}/{key}"), stage("g", "b", "label/", "c", ""), false},
		{"DotAndEmptySegmentsDropped", stage("f", "a", "x", "b", "./thumbs//{key}"), stage("g", "b", "thumbs/x", "c", ""), true},
		{"DotAndEmptySegmentsDroppedDiffers", stage("f", "a", "x", "b", "./thumbs//{key}"), stage("g", "b", "thumbs/y", "c", ""), false},
		{"BaseFirstIsUnknown", stage("f", "a", "in/", "b", "{base}/{dir}{ext}"), stage("g", "b", "zzz/", "c", ""), true},
		{"LiteralSuffixSlashes", stage("f", "a", "", "b", "{key}//x.png"), stage("g", "b", "", "c", "", "/x.png"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := registry.Feeds(tc.f, tc.g); got != tc.want {
				t.Errorf("Feeds(%+v, %+v) = %v, want %v", tc.f.Output, tc.g.Trigger, got, tc.want)
			}
		})
	}
}

// Every Feeds false above must be right: no rendered output key of f
// triggers g. Checked here by rendering sample inputs that trigger f.
func TestFeeds_FalseMeansNoOutputMatches(t *testing.T) {
	fs := []registry.Function{
		stage("f1", "a", "photos/2024", "b", "{dir}{base}{ext}.png", ".jpg"),
		stage("f2", "a", "in/", "b", "t/{key}", ".jpg", ".png"),
		stage("f3", "a", "", "b", "t/{dir}{base}{ext}", ".jpg"),
		stage("f4", "a", "x", "b", "./thumbs//{key}"),
	}
	gs := []registry.Function{
		stage("g1", "b", "photos/", "c", "", ".png"), stage("g2", "b", "t/in/", "c", "", ".jpg"),
		stage("g3", "b", "", "c", "", ".JPG.json"), stage("g4", "b", "thumbs/y", "c", ""),
		stage("g5", "b", "t/", "c", "", ".gif"),
	}
	inputs := []string{"photos/2024/a.jpg", "photos/2024x.JPG", "in/a.jpg", "in/b/c.png", "x.jpg", "xy/z", "a/b.jpg"}
	for _, f := range fs {
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if registry.Feeds(f, g) {
				continue
			}
			for _, in := range inputs {
				if !f.Matches("a", in) {
					continue
				}
				out, err := f.OutputKey(in)
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{out, out + ".json"} {
					if g.Matches("b", k) {
						t.Errorf("Feeds(%s, %s) = false, but input %q renders %q, which triggers %s", f.Name, g.Name, in, k, g.Name)
					}
				}
			}
		}
	}
}

// images → thumbnail → thumbs → classify → labels, and labels → images
// closes the cycle.
func chain() []registry.Function {
	return []registry.Function{
		stage("thumbnail", "images", "", "thumbs", "{dir}{base}{ext}.png"),
		stage("classify", "thumbs", "", "labels", "{key}.json", ".png"),
	}
}

func TestCheckGraph_RefusesCycle(t *testing.T) {
	all := func(registry.Function) bool { return true }
	if err := registry.CheckGraph(nil, chain()[0], all); err != nil {
		t.Fatalf("first stage: %v", err)
	}
	if err := registry.CheckGraph(chain()[:1], chain()[1], all); err != nil {
		t.Fatalf("second stage: %v", err)
	}
	labels := stage("labels", "labels", "", "images", "")
	err := registry.CheckGraph(chain(), labels, all)
	const want = "deploying labels would close a cycle: thumbnail → classify → labels → thumbnail"
	if err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
	if !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("err %v does not wrap ErrInvalid (a 400)", err)
	}
	// The same function writing where classify does not look is fine.
	labels.Output.KeyTemplate = "raw/{key}"
	if err := registry.CheckGraph(chain(), labels, all); err == nil {
		t.Fatal("labels → images/raw/ feeds thumbnail (no prefix): want a cycle")
	}
	labels.Output.Bucket = "index"
	if err := registry.CheckGraph(chain(), labels, all); err != nil {
		t.Fatalf("labels → index: %v", err)
	}
}

func TestCheckGraph_SelfLoop(t *testing.T) {
	all := func(registry.Function) bool { return true }
	f := stage("thumb", "images", "", "images", "thumbs/{key}")
	err := registry.CheckGraph(nil, f, all)
	if want := "deploying thumb would close a cycle: thumb → thumb"; err == nil || err.Error() != want || !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("err %v, want %q wrapping ErrInvalid", err, want)
	}
	// Its own outputs do not match its trigger prefix: no loop.
	f.Trigger.Prefix = "in/"
	if err := registry.CheckGraph(nil, f, all); err != nil {
		t.Fatalf("prefix in/, output thumbs/in/...: %v", err)
	}
	// Nor its suffix.
	f = stage("thumb", "images", "", "images", "thumbs/{dir}{base}{ext}.png", ".jpg")
	if err := registry.CheckGraph(nil, f, all); err != nil {
		t.Fatalf("suffix .jpg, output .jpg.png: %v", err)
	}
}

// linear is s1 … sn, si reading bucket b(i-1) and writing bi.
func linear(n int) []registry.Function {
	out := make([]registry.Function, n)
	for i := range out {
		out[i] = stage(fmt.Sprintf("s%d", i+1), fmt.Sprintf("b%d", i), "", fmt.Sprintf("b%d", i+1), "")
	}
	return out
}

func TestCheckGraph_ChainLength(t *testing.T) {
	all := func(registry.Function) bool { return true }
	fns := linear(registry.MaxChainStages + 1)
	if err := registry.CheckGraph(fns[:registry.MaxChainStages-1], fns[registry.MaxChainStages-1], all); err != nil {
		t.Fatalf("16 stages: %v", err)
	}
	err := registry.CheckGraph(fns[:registry.MaxChainStages], fns[registry.MaxChainStages], all)
	want := "deploying s17 would make a chain of 17 stages (at most 16): " + strings.Join(names(fns), " → ")
	if err == nil || err.Error() != want || !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("17 stages: err %v, want %q wrapping ErrInvalid", err, want)
	}
	// The stage that joins two chains into one too long is refused too.
	rest := slices.Concat(fns[:8], fns[9:])
	if err := registry.CheckGraph(rest, fns[8], all); err == nil || !strings.Contains(err.Error(), "deploying s9 would make a chain of 17 stages") {
		t.Fatalf("joining stage: err %v", err)
	}
}

func TestCheckGraph_HidesInvisibleFunctions(t *testing.T) {
	a1 := stage("a1", "x", "", "y", "")
	b1 := stage("secret-b", "y", "", "z", "")
	b1.Tenant = "other"
	a2 := stage("a2", "z", "", "x", "")
	err := registry.CheckGraph([]registry.Function{a1, b1}, a2, func(f registry.Function) bool { return f.Tenant == "t" })
	want := "deploying a2 would close a cycle: a1 → (a function of another tenant) → a2 → a1"
	if err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
	// The admin sees it, tenant-qualified.
	err = registry.CheckGraph([]registry.Function{a1, b1}, a2, func(registry.Function) bool { return true })
	if want := "deploying a2 would close a cycle: a1 → other/secret-b → a2 → a1"; err == nil || err.Error() != want {
		t.Fatalf("admin: err %v, want %q", err, want)
	}
}

func TestCheckGraph_RedeployIsNotACycleWithItself(t *testing.T) {
	all := func(registry.Function) bool { return true }
	fns := chain()
	// classify again, new params and version, same place: its old self is
	// replaced, not an upstream of it.
	again := fns[1]
	again.Params = map[string]string{"model": "v2"}
	if err := registry.CheckGraph(fns, again, all); err != nil {
		t.Fatalf("redeploy: %v", err)
	}
	// Moving classify to write into thumbs' trigger bucket is a cycle
	// with thumbnail, not with its old self.
	again.Output = registry.Output{Bucket: "images", KeyTemplate: "labels/{key}"}
	if err := registry.CheckGraph(fns, again, all); err == nil || !strings.Contains(err.Error(), "thumbnail → classify → thumbnail") {
		t.Fatalf("err %v, want the cycle thumbnail → classify → thumbnail", err)
	}
}

func TestGraph_Neighbours(t *testing.T) {
	fns := append(chain(),
		stage("index", "labels", "", "search", ""),
		stage("audit", "labels", "", "logs", ""),
		stage("loop", "loops", "", "loops", "again/{key}"),
	)
	g := registry.NewGraph(fns)
	for _, tc := range []struct {
		of                  string
		down, up, ancestors []string
	}{
		{"thumbnail", []string{"classify"}, nil, nil},
		{"classify", []string{"audit", "index"}, []string{"thumbnail"}, []string{"thumbnail"}},
		{"index", nil, []string{"classify"}, []string{"classify", "thumbnail"}},
		{"loop", []string{"loop"}, []string{"loop"}, []string{"loop"}},
	} {
		f := fns[slices.IndexFunc(fns, func(f registry.Function) bool { return f.Name == tc.of })]
		if got := names(g.Downstream(f)); !slices.Equal(got, tc.down) {
			t.Errorf("Downstream(%s) = %v, want %v", tc.of, got, tc.down)
		}
		if got := names(g.Upstream(f)); !slices.Equal(got, tc.up) {
			t.Errorf("Upstream(%s) = %v, want %v", tc.of, got, tc.up)
		}
		if got := names(g.Ancestors(f)); !slices.Equal(got, tc.ancestors) {
			t.Errorf("Ancestors(%s) = %v, want %v", tc.of, got, tc.ancestors)
		}
	}
	// A function not in the graph gets its neighbours all the same.
	if got := names(g.Upstream(stage("new", "search", "", "out", ""))); !slices.Equal(got, []string{"index"}) {
		t.Errorf("Upstream(new) = %v, want [index]", got)
	}
}

func TestRegistry_DeployRefusesCycle(t *testing.T) {
	r, _ := newRegistry(t)
	for _, f := range chain() {
		if _, err := r.Deploy(t.Context(), f, []byte("code")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.Deploy(t.Context(), stage("labels", "labels", "", "images", ""), []byte("code"))
	if err == nil || !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "thumbnail → classify → labels → thumbnail") {
		t.Fatalf("err %v, want the cycle, wrapping ErrInvalid", err)
	}
	if _, err := r.Get(t.Context(), "t", "labels"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("refused function stored: %v", err)
	}
	// Another tenant's functions are hidden from a tenant's error, shown
	// to the default tenant's (the admin's).
	other := stage("labels", "labels", "", "images", "")
	other.Tenant = "u"
	if _, err := r.Deploy(t.Context(), other, []byte("code")); err == nil || !strings.Contains(err.Error(), "(a function of another tenant) → (a function of another tenant) → labels") {
		t.Fatalf("tenant u: err %v", err)
	}
	other.Tenant = registry.DefaultTenant
	if _, err := r.Deploy(t.Context(), other, []byte("code")); err == nil || !strings.Contains(err.Error(), "t/thumbnail → t/classify → labels") {
		t.Fatalf("default tenant: err %v", err)
	}
}

func TestRegistry_GraphFollowsCache(t *testing.T) {
	r, _ := newRegistry(t)
	fns := chain()
	for _, f := range fns {
		if _, err := r.Deploy(t.Context(), f, []byte("code")); err != nil {
			t.Fatal(err)
		}
	}
	g := r.Graph()
	if r.Graph() != g {
		t.Error("Graph rebuilt without a change")
	}
	if got := names(g.Downstream(fns[0])); !slices.Equal(got, []string{"classify"}) {
		t.Fatalf("Downstream(thumbnail) = %v", got)
	}
	idx := stage("index", "labels", "", "search", "")
	idx.OnInputDelete = registry.OnInputDeleteDelete
	if _, err := r.Deploy(t.Context(), idx, []byte("code")); err != nil {
		t.Fatal(err)
	}
	down := r.Graph().Downstream(fns[1])
	if got := names(down); !slices.Equal(got, []string{"index"}) {
		t.Fatalf("after deploy: Downstream(classify) = %v", got)
	}
	if down[0].OnInputDelete != registry.OnInputDeleteDelete || down[0].Version == "" {
		t.Errorf("graph holds %+v, want the stored definition", down[0])
	}
	if err := r.Delete(t.Context(), "t", "classify"); err != nil {
		t.Fatal(err)
	}
	if got := r.Graph().Downstream(fns[0]); len(got) != 0 {
		t.Fatalf("after delete: Downstream(thumbnail) = %v", names(got))
	}
}

func TestFeeds_ActionsAreNoEdges(t *testing.T) {
	action := registry.Function{Name: "a", Runtime: "process"}
	fn := registry.Function{Name: "f", Runtime: "wasm", Trigger: registry.Trigger{Bucket: "in"}, Output: registry.Output{Bucket: "out"}}
	if registry.Feeds(action, action) || registry.Feeds(action, fn) || registry.Feeds(fn, action) {
		t.Fatal("an action (no buckets) feeds or is fed")
	}
	if err := registry.CheckGraph([]registry.Function{action}, action, func(registry.Function) bool { return true }); err != nil {
		t.Fatalf("redeploying an action: %v", err)
	}
}
