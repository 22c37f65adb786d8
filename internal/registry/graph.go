package registry

import (
	"cmp"
	"fmt"
	"path"
	"slices"
	"strings"
)

// MaxChainStages is the most functions one chain of outputs triggering
// functions may have (as OpenWhisk limits sequences): a deploy that makes
// a longer one is refused, and a deeper chain stops at run time.
const MaxChainStages = 16

// resultSuffix is what a function that writes no output stream appends
// to its output key to store its JSON result (see the pipeline's
// resultKey): such an object may trigger the next stage too.
const resultSuffix = ".json"

// Feeds reports whether an output of f may trigger g: f's output bucket
// is g's trigger bucket, and the literal prefix and suffixes f's key
// template can produce (Output.KeyTemplate, with what f's trigger says of
// its input keys) may match g's trigger prefix and suffixes. It errs
// towards true: where a template says nothing certain (a {base} first, a
// {dir} last), any key may come out.
func Feeds(f, g Function) bool {
	if f.IsAction() || g.IsAction() {
		return false // invoked directly: no bucket in or out
	}
	return outputOf(f).triggers(g)
}

// output is what is known of every object a function writes.
type output struct {
	bucket, prefix string
	suffixes       []string // lowercased; one of them ends every key
}

func outputOf(f Function) output {
	o := output{bucket: f.Output.Bucket, prefix: outputPrefix(f)}
	for _, s := range outputSuffixes(f) {
		o.suffixes = append(o.suffixes, strings.ToLower(s))
	}
	return o
}

// triggers reports whether an object o describes may trigger g.
func (o output) triggers(g Function) bool {
	if o.bucket != g.Trigger.Bucket {
		return false
	}
	if !strings.HasPrefix(o.prefix, g.Trigger.Prefix) && !strings.HasPrefix(g.Trigger.Prefix, o.prefix) {
		return false
	}
	if len(g.Trigger.Suffixes) == 0 {
		return true
	}
	for _, t := range g.Trigger.Suffixes {
		t = strings.ToLower(t) // suffixes match case-insensitively (Mismatch)
		for _, s := range o.suffixes {
			if strings.HasSuffix(s, t) || strings.HasSuffix(t, s) {
				return true
			}
		}
	}
	return false
}

// keyPlaceholders are the placeholders whose text depends on the input
// key ({name} is known: templateOf replaces it).
var keyPlaceholders = []string{"{key}", "{dir}", "{base}", "{ext}"}

// templateOf is f's key template with {name} rendered.
func templateOf(f Function) string {
	tmpl := f.Output.KeyTemplate
	if tmpl == "" {
		tmpl = "{key}"
	}
	return strings.ReplaceAll(tmpl, "{name}", f.Name)
}

// outputPrefix is a prefix every output key of f has.
func outputPrefix(f Function) string {
	tmpl := templateOf(f)
	first, at := len(tmpl), ""
	for _, ph := range keyPlaceholders {
		if i := strings.Index(tmpl, ph); i >= 0 && i < first {
			first, at = i, ph
		}
	}
	p := tmpl[:first]
	switch at {
	case "{key}":
		p += f.Trigger.Prefix
	case "{dir}":
		// The input's folder starts with the trigger prefix's folders.
		if i := strings.LastIndexByte(f.Trigger.Prefix, '/'); i >= 0 {
			p += f.Trigger.Prefix[:i+1]
		}
	}
	return cleanPrefix(p)
}

// outputSuffixes are suffixes one of which every output key of f has
// (and every result key, KEY.json): "" where nothing is known.
func outputSuffixes(f Function) []string {
	tmpl := templateOf(f)
	last, at := -1, ""
	for _, ph := range keyPlaceholders {
		if i := strings.LastIndex(tmpl, ph); i >= 0 && i+len(ph) > last {
			last, at = i+len(ph), ph
		}
	}
	lit := tmpl[max(last, 0):]
	var known []string
	switch at {
	case "{key}":
		known = f.Trigger.Suffixes
	case "{ext}":
		// The input's extension is known when every trigger suffix has a
		// dot in its file name: it is the suffix from its last dot.
		for _, s := range f.Trigger.Suffixes {
			file := s[strings.LastIndexByte(s, '/')+1:]
			ext := path.Ext(file)
			if ext == "" {
				known = nil
				break
			}
			known = append(known, ext)
		}
	}
	if len(known) == 0 {
		known = []string{""}
	}
	out := make([]string, 0, 2*len(known))
	for _, s := range known {
		s = cleanSuffix(s + lit)
		out = append(out, s, s+resultSuffix)
	}
	return out
}

// cleanPrefix is a prefix of every key OutputKey renders from text
// starting with p: the complete segments of p without "" and "." (which
// OutputKey drops), then its last, partial one, unless that is only dots
// (it may be dropped).
func cleanPrefix(p string) string {
	segs := strings.Split(p, "/")
	last := segs[len(segs)-1]
	kept := slices.DeleteFunc(segs[:len(segs)-1], func(s string) bool { return s == "" || s == "." })
	if strings.Trim(last, ".") == "" {
		last = ""
	}
	if len(kept) == 0 {
		return last
	}
	return strings.Join(kept, "/") + "/" + last
}

// cleanSuffix is a suffix of every key OutputKey renders from text ending
// in s: cleanPrefix mirrored.
func cleanSuffix(s string) string {
	segs := strings.Split(s, "/")
	first := segs[0]
	kept := slices.DeleteFunc(segs[1:], func(s string) bool { return s == "" || s == "." })
	if strings.Trim(first, ".") == "" {
		return strings.Join(kept, "/")
	}
	if len(kept) == 0 {
		return first
	}
	return first + "/" + strings.Join(kept, "/")
}

// Graph is the function graph: an edge f → g where an output of f may
// trigger g (Feeds). Functions are told apart by tenant and name. A Graph
// is immutable and safe for concurrent use.
type Graph struct {
	fns      []Function // sorted by tenant, then name
	ids      map[string]int
	down, up [][]int // by index into fns, sorted
}

// byID orders functions by tenant, then name.
func byID(a, b Function) int {
	return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Name, b.Name))
}

// NewGraph returns the graph of fns. Of functions with one tenant and
// name, the last counts.
func NewGraph(fns []Function) *Graph {
	g := &Graph{ids: make(map[string]int, len(fns))}
	byName := make(map[string]Function, len(fns))
	for _, f := range fns {
		byName[docID(f.Tenant, f.Name)] = f
	}
	for _, f := range byName {
		g.fns = append(g.fns, f)
	}
	slices.SortFunc(g.fns, byID)
	g.down, g.up = make([][]int, len(g.fns)), make([][]int, len(g.fns))
	for i, f := range g.fns {
		g.ids[docID(f.Tenant, f.Name)] = i
		for j, h := range g.fns {
			if Feeds(f, h) {
				g.down[i] = append(g.down[i], j)
				g.up[j] = append(g.up[j], i)
			}
		}
	}
	return g
}

// Downstream returns the functions an output of f may trigger, sorted by
// tenant and name (f itself where its outputs may trigger it). f need
// not be in the graph.
func (g *Graph) Downstream(f Function) []Function {
	return g.list(g.neighbours(f, g.down, func(h Function) bool { return Feeds(f, h) }))
}

// Upstream returns the functions whose outputs may trigger f, sorted by
// tenant and name. f need not be in the graph.
func (g *Graph) Upstream(f Function) []Function {
	return g.list(g.neighbours(f, g.up, func(h Function) bool { return Feeds(h, f) }))
}

// Ancestors returns every function upstream of f, directly or through
// others, sorted by tenant and name; f itself only if it is on a cycle.
func (g *Graph) Ancestors(f Function) []Function {
	seen := make([]bool, len(g.fns))
	queue := g.neighbours(f, g.up, func(h Function) bool { return Feeds(h, f) })
	for _, i := range queue {
		seen[i] = true
	}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, j := range g.up[i] {
			if !seen[j] {
				seen[j] = true
				queue = append(queue, j)
			}
		}
	}
	var out []Function
	for i, ok := range seen {
		if ok {
			out = append(out, g.fns[i])
		}
	}
	return out
}

// neighbours are f's neighbours in adj, by index, or, for a function not
// in the graph, the functions edge says are.
func (g *Graph) neighbours(f Function, adj [][]int, edge func(Function) bool) []int {
	if i, ok := g.ids[docID(f.Tenant, f.Name)]; ok {
		return slices.Clone(adj[i])
	}
	var out []int
	for i, h := range g.fns {
		if edge(h) {
			out = append(out, i)
		}
	}
	return out
}

func (g *Graph) list(is []int) []Function {
	var out []Function
	for _, i := range is {
		out = append(out, g.fns[i])
	}
	return out
}

// CheckGraph refuses adding f to existing (replacing the function of f's
// tenant and name, if any) when that would close a cycle through f or
// make a chain of more than MaxChainStages functions through f. Its
// errors wrap ErrInvalid and name the cycle or chain, each function the
// caller may see (visible) by name (tenant/name if of another tenant than
// f), the others as "(a function of another tenant)".
func CheckGraph(existing []Function, f Function, visible func(Function) bool) error {
	f.Tenant = TenantOr(f.Tenant)
	fns := slices.DeleteFunc(slices.Clone(existing), func(h Function) bool {
		return TenantOr(h.Tenant) == f.Tenant && h.Name == f.Name
	})
	g := NewGraph(append(fns, f))
	at := g.ids[docID(f.Tenant, f.Name)]
	name := func(i int) string {
		h := g.fns[i]
		switch {
		case i == at || h.Tenant == f.Tenant:
			return h.Name
		case visible(h):
			return h.Tenant + "/" + h.Name
		}
		return "(a function of another tenant)"
	}
	names := func(path []int) string {
		s := make([]string, len(path))
		for k, i := range path {
			s[k] = name(i)
		}
		return strings.Join(s, " → ")
	}
	if cycle := g.cycleThrough(at); cycle != nil {
		return invalidError{fmt.Errorf("deploying %s would close a cycle: %s", f.Name, names(cycle))}
	}
	up, down := g.longest(at, g.up), g.longest(at, g.down)
	slices.Reverse(up)
	chain := append(up, down[1:]...)
	if len(chain) > MaxChainStages {
		return invalidError{fmt.Errorf("deploying %s would make a chain of %d stages (at most %d): %s",
			f.Name, len(chain), MaxChainStages, names(chain))}
	}
	return nil
}

// cycleThrough returns a shortest cycle from function at back to it,
// starting at the function after it and ending with it and that function
// again (b → c → at → b), or nil if there is none.
func (g *Graph) cycleThrough(at int) []int {
	from := make([]int, len(g.fns)) // BFS parent + 1; 0 = not reached
	queue := []int{at}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, j := range g.down[i] {
			if j == at {
				path := []int{at}
				for k := i; k != at; k = from[k] - 1 {
					path = append(path, k)
				}
				slices.Reverse(path) // first after at, …, at
				return append(path, path[0])
			}
			if from[j] == 0 {
				from[j] = i + 1
				queue = append(queue, j)
			}
		}
	}
	return nil
}

// longest returns a longest path from function at along adj, at first.
// A function already on the path is not followed again, so cycles away
// from at (deployed before cycles were refused) end a path rather than
// loop.
func (g *Graph) longest(at int, adj [][]int) []int {
	memo := map[int][]int{}
	onPath := make([]bool, len(g.fns))
	var walk func(i int) []int
	walk = func(i int) []int {
		if p, ok := memo[i]; ok {
			return p
		}
		onPath[i] = true
		var best []int
		for _, j := range adj[i] {
			if !onPath[j] {
				if p := walk(j); len(p) > len(best) {
					best = p
				}
			}
		}
		onPath[i] = false
		p := append([]int{i}, best...)
		memo[i] = p
		return p
	}
	return walk(at)
}
