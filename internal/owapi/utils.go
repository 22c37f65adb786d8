package owapi

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dedupfn/dedupfn/internal/registry"
)

// The built-in actions of whisk.system: /whisk.system/utils (echo, sort,
// cat, head, split, date, as every OpenWhisk has) and the objects feed
// (feeds.go). The utils run in Go, in BuiltinRuntime, registered with
// the pipeline like any runtime: their invocations go through the same
// path as every action's (deduplicated, recorded), with no code to
// deploy, compile or trust. date is not pure: it is never deduplicated.
const (
	// BuiltinRuntime is the runtime name of the built-in utils.
	BuiltinRuntime = "owbuiltin"
	// ConfigBuiltin names the built-in in a function's config.
	ConfigBuiltin = "builtin"
	// BuiltinVersion is the runtime's version, part of every dedup key.
	BuiltinVersion = "owbuiltin-1"
	// systemPrefix starts the registry names of the built-ins.
	systemPrefix       = "owsys."
	builtinObjectsFeed = "dedupfn/objects"
)

// builtinAction is one built-in action.
type builtinAction struct {
	id  string // "pkg/name"
	pkg string
	doc actionDoc
}

var (
	builtinsOnce sync.Once
	builtins     []builtinAction
)

// builtinActions lists the built-ins.
func builtinActions() []builtinAction {
	builtinsOnce.Do(func() {
		desc := map[string]string{
			"utils/echo":       "Returns the input arguments, unchanged.",
			"utils/sort":       "Sorts an array of lines (lines), returning lines and length.",
			"utils/cat":        "Concatenates lines (lines) into payload, one per line.",
			"utils/head":       "Returns the first num (default 1) of lines.",
			"utils/split":      "Splits payload into lines at separator (default a newline).",
			"utils/date":       "Returns the current date and time (never deduplicated).",
			builtinObjectsFeed: "Feed: fires its trigger on objects created in a bucket (lifecycleEvent CREATE, READ, UPDATE, DELETE; bucket, prefix, suffix, output_bucket, output_key, on_input_delete).",
		}
		ids := make([]string, 0, len(desc))
		for id := range desc {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			pkg, name, _ := strings.Cut(id, "/")
			d := actionDoc{entity: entity{Namespace: SystemNamespace + "/" + pkg, Name: name, Version: "0.0.1", Publish: true,
				Parameters: keyValues{}}, Exec: execDoc{Kind: BuiltinRuntime}, Limits: defaultLimits}
			d.Annotations = keyValues{}.set("description", desc[id])
			if id == builtinObjectsFeed {
				d.Annotations = d.Annotations.set("feed", true)
			}
			if id == "utils/date" {
				d.Annotations = d.Annotations.set(annotDedup, false)
			}
			builtins = append(builtins, builtinAction{id: id, pkg: pkg, doc: d})
		}
	})
	return builtins
}

// builtinFunction is the function that runs built-in id for caller: in
// the caller's tenant, so its results are the caller's.
func builtinFunction(caller *Namespace, id string) (registry.Function, error) {
	pkg, name, _ := strings.Cut(id, "/")
	fn := registry.Function{
		Tenant: caller.tenant(), Name: systemPrefix + escapeName(pkg) + pkgSep + escapeName(name),
		Runtime: BuiltinRuntime, Config: map[string]string{ConfigBuiltin: id}, NoDedup: id == "utils/date",
	}
	if err := fn.Validate(); err != nil {
		return fn, err
	}
	return fn, nil
}

// systemActionOf reverses builtinFunction's name.
func systemActionOf(function string) (pkg, name string, ok bool) {
	rest, found := strings.CutPrefix(function, systemPrefix)
	if !found {
		return "", "", false
	}
	return actionOf(actionPrefix + rest)
}

// runBuiltin runs built-in id on params (one JSON object).
func runBuiltin(id string, params json.RawMessage) (json.RawMessage, error) {
	var in map[string]json.RawMessage
	if len(params) > 0 {
		if err := json.Unmarshal(params, &in); err != nil {
			return nil, fmt.Errorf("%s: parameters must be a JSON object: %w", id, err)
		}
	}
	lines := func() ([]string, error) {
		var l []string
		if v, ok := in["lines"]; ok {
			if err := json.Unmarshal(v, &l); err != nil {
				return nil, fmt.Errorf("%s: lines must be an array of strings: %w", id, err)
			}
		}
		return l, nil
	}
	switch id {
	case "utils/echo":
		if in == nil {
			in = map[string]json.RawMessage{}
		}
		return json.Marshal(in)
	case "utils/sort":
		l, err := lines()
		if err != nil {
			return nil, err
		}
		sort.Strings(l)
		return json.Marshal(map[string]any{"lines": orNone(l), "length": len(l)})
	case "utils/cat":
		l, err := lines()
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"lines": orNone(l), "payload": strings.Join(l, "\n")})
	case "utils/head":
		l, err := lines()
		if err != nil {
			return nil, err
		}
		num := 1
		if v, ok := in["num"]; ok {
			if err := json.Unmarshal(v, &num); err != nil || num < 0 {
				return nil, fmt.Errorf("%s: num must be a number >= 0", id)
			}
		}
		return json.Marshal(map[string]any{"lines": orNone(l[:min(num, len(l))])})
	case "utils/split":
		var payload string
		sep := "\n"
		if v, ok := in["payload"]; ok {
			if err := json.Unmarshal(v, &payload); err != nil {
				return nil, fmt.Errorf("%s: payload must be a string: %w", id, err)
			}
		}
		if v, ok := in["separator"]; ok {
			if err := json.Unmarshal(v, &sep); err != nil {
				return nil, fmt.Errorf("%s: separator must be a string: %w", id, err)
			}
		}
		return json.Marshal(map[string]any{"lines": strings.Split(payload, sep), "payload": payload})
	case "utils/date":
		return json.Marshal(map[string]string{"date": time.Now().UTC().Format("2006-01-02T15:04:05.000Z")})
	}
	return nil, fmt.Errorf("no built-in %q", id)
}

// orNone is l, or an empty list (never null in JSON).
func orNone(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
