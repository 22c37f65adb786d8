package process

// Action kinds: OpenWhisk actions whose code runs on the host.
//
// ActionCode turns an OpenWhisk action's exec (kind, code, binary, main)
// into the code of a process function (Function.Code, deployed with
// runtime "process"), so that an action created through the OpenWhisk
// API runs as an --exec action does:
//
//   - blackbox (and native): an actionloop executable (a script with a
//     shebang) or a zip with an executable named exec at its root, as
//     --exec takes them today; the code is used as it is.
//   - nodejs:* (nodejs:20, nodejs:default, ...): JavaScript source with a
//     main function (exported, or declared at its top level; it may
//     return a Promise), or a zip holding a Node.js package (package.json
//     and its "main" file, else index.js) whose exports hold main.
//   - python:3 (and python:3.N): Python source with main(args), or a zip
//     with __main__.py (its other files importable beside it).
//
// main names the function to call (default "main"). For nodejs and python
// the result is a zip of the user's code under action/, dedupfn's launcher
// for the language (launchers/launcher.js, launcher.py, embedded in the
// binary) and a manifest, dedupfn-action.json, naming the kind, main and
// entry: kind and main are part of the code, so of the function's version
// and its dedup keys. The zip is deterministic: the same exec gives the
// same code digest on every deploy. The runtime runs the launcher with
// Options.Node or Options.Python (found on the server's PATH at start
// when not set); a missing interpreter is refused by Prepare, so
// Pipeline.Prepare at deploy, naming the kind. The launcher speaks the
// actionloop protocol (doc.go): it acks on fd 3, calls main with each
// activation's value, exports __OW_ACTIVATION_ID, __OW_DEADLINE and the
// other fields of the activation line, and answers with main's result,
// one JSON object; an exception (or a result that is not an object) is
// the result {"error": message}, the traceback on stderr.
//
// Trust: every one of these kinds runs host code with the server's
// interpreters, as the process runtime does: only the admin may deploy
// them (HostKind), and --exec-user (Options.ExecUser) applies to them.

import (
	"archive/zip"
	"bytes"
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/dedupfn/dedupfn/internal/runtime"
)

// Errors of ActionCode, checked with errors.Is.
var (
	// ErrUnknownKind: the kind is not one ActionCode turns into a process
	// function (OpenWhisk's 400).
	ErrUnknownKind = errors.New("unknown action kind")
	// ErrInvalidCode: the code cannot be an action of its kind (bad
	// base64, a zip without its entry file, an invalid main name).
	ErrInvalidCode = errors.New("invalid action code")
)

// ConfigKind is the Function.Config key ActionCode sets to the action's
// kind. The process runtime does not read it: the code carries its kind.
const ConfigKind = "kind"

// ManifestName is the file at the root of a launcher zip that names the
// action's language, kind, main and entry.
const ManifestName = "dedupfn-action.json"

//go:embed launchers/launcher.js launchers/launcher.py
var launcherFiles embed.FS

// language is a kind family run by a launcher.
type language struct {
	name     string // the manifest's language, and the kinds' prefix
	launcher string // the launcher's file name, at the root of the zip
	binary   string // the interpreter, found on PATH when not configured
	// interpreter is the Options field holding the interpreter's path.
	interpreter func(*Options) *string
	// source is the entry file of a source action, under action/.
	source string
	// mainRE is what a main name must match.
	mainRE *regexp.Regexp
	// memory, if set, turns a memory limit into the interpreter's flags
	// and an address-space limit; nil: RLIMIT_AS is the limit.
	memory func(mem uint64) (flags []string, addressSpace uint64)
}

var languages = []language{
	{name: "nodejs", launcher: "launcher.js", binary: "node", interpreter: func(o *Options) *string { return &o.Node },
		source: "index.js", mainRE: regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`), memory: nodeMemory},
	{name: "python", launcher: "launcher.py", binary: "python3", interpreter: func(o *Options) *string { return &o.Python },
		source: "__main__.py", mainRE: regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)},
}

// find fills the interpreter's path in o: as configured, made absolute,
// else found on PATH; not found leaves it empty (the kind cannot run).
func (l language) find(o *Options) error {
	p := l.interpreter(o)
	if *p == "" {
		found, err := exec.LookPath(l.binary)
		if err != nil {
			return nil
		}
		*p = found
	}
	abs, err := filepath.Abs(*p)
	if err != nil {
		return fmt.Errorf("process: %s interpreter %q: %w", l.name, *p, err)
	}
	*p = abs
	return nil
}

// languageOf returns the language of a nodejs or python kind.
func languageOf(kind string) (language, bool) {
	switch {
	case kind == "nodejs" || strings.HasPrefix(kind, "nodejs:"):
		return languages[0], true
	case kind == "python:3" || strings.HasPrefix(kind, "python:3."):
		return languages[1], true
	}
	return language{}, false
}

// HostKind reports whether ActionCode takes kind: a kind whose code runs
// on the host, which only the admin may deploy.
func HostKind(kind string) bool {
	_, ok := languageOf(kind)
	return ok || kind == "blackbox" || kind == "native"
}

// ActionCode turns an OpenWhisk action's exec into the code and config of
// a process function (see the top of this file). code is exec.code as
// sent: with binary, a base64 zip (or the zip's bytes already decoded);
// without, source text. main is exec.main ("" = "main"). Errors wrap
// ErrUnknownKind or ErrInvalidCode.
func ActionCode(kind string, code []byte, binary bool, main string) (exe []byte, config map[string]string, err error) {
	if !HostKind(kind) {
		return nil, nil, fmt.Errorf("%w: %q (dedupfn runs nodejs:*, python:3, blackbox and wasm actions, and sequences)", ErrUnknownKind, kind)
	}
	if binary && !isZip(code) {
		dec, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(code)), ""))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: binary code is not base64: %v", ErrInvalidCode, err)
		}
		code = dec
	}
	if binary && !isZip(code) {
		return nil, nil, fmt.Errorf("%w: binary code of a %s action must be a zip", ErrInvalidCode, kind)
	}
	config = map[string]string{ConfigKind: kind}
	lang, ok := languageOf(kind)
	if !ok { // blackbox: an actionloop executable or zip, as --exec takes it
		if len(code) == 0 {
			return nil, nil, fmt.Errorf("%w: a %s action needs code", ErrInvalidCode, kind)
		}
		return code, config, nil
	}
	if main == "" {
		main = "main"
	}
	if !lang.mainRE.MatchString(main) {
		return nil, nil, fmt.Errorf("%w: main %q is not a %s function name", ErrInvalidCode, main, lang.name)
	}
	m := manifest{Language: lang.name, Kind: kind, Main: main, Entry: "action/" + lang.source}
	var user *zip.Reader
	if binary {
		if user, err = zip.NewReader(bytes.NewReader(code), int64(len(code))); err != nil {
			return nil, nil, fmt.Errorf("%w: open zip: %v", ErrInvalidCode, err)
		}
		if m, err = m.forZip(user); err != nil {
			return nil, nil, err
		}
	}
	exe, err = launcherZip(lang, m, code, user)
	if err != nil {
		return nil, nil, err
	}
	return exe, config, nil
}

// forZip is m for a zip of the user's: a Node.js package (package.json,
// else index.js) or a Python zip with __main__.py, at the zip's root.
func (m manifest) forZip(zr *zip.Reader) (manifest, error) {
	has := map[string]bool{}
	for _, f := range zr.File {
		has[f.Name] = true
	}
	switch m.Language {
	case "nodejs":
		if !has["package.json"] && !has["index.js"] {
			return m, fmt.Errorf("%w: a nodejs zip must hold package.json (and its main file) or index.js at its root", ErrInvalidCode)
		}
		m.Entry, m.Package = "action", true // require resolves package.json's main, else index.js
	case "python":
		if !has["__main__.py"] {
			return m, fmt.Errorf("%w: a python zip must hold __main__.py at its root", ErrInvalidCode)
		}
	}
	return m, nil
}

// launcherZip writes the code of a launcher action: the manifest, the
// language's launcher and the user's code under action/ (source, or the
// entries of zip user copied as they are, still compressed). Entries are
// stored with no time and no compression of their own, so the same
// action gives the same bytes in every dedupfn build.
func launcherZip(lang language, m manifest, source []byte, user *zip.Reader) ([]byte, error) {
	launcher, err := launcherFiles.ReadFile("launchers/" + lang.launcher)
	if err != nil {
		return nil, fmt.Errorf("process: embedded launcher: %w", err)
	}
	mj, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	files := []struct {
		name string
		data []byte
	}{{ManifestName, mj}, {lang.launcher, launcher}}
	if user == nil {
		files = append(files, struct {
			name string
			data []byte
		}{m.Entry, source})
	}
	for _, f := range files {
		h := &zip.FileHeader{Name: f.name, Method: zip.Store}
		h.SetMode(0o644)
		w, err := zw.CreateHeader(h)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, err
		}
	}
	if user != nil {
		for _, f := range user.File {
			if err := checkEntry(f); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInvalidCode, err)
			}
			if err := copyEntry(zw, f, "action/"+f.Name); err != nil {
				return nil, fmt.Errorf("%w: zip entry %q: %v", ErrInvalidCode, f.Name, err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copyEntry copies zip entry f into zw under name, its bytes as they are
// (not decompressed: a zip bomb costs nothing here; unpack bounds it).
func copyEntry(zw *zip.Writer, f *zip.File, name string) error {
	h := f.FileHeader
	h.Name = name
	w, err := zw.CreateRaw(&h)
	if err != nil {
		return err
	}
	rc, err := f.OpenRaw()
	if err != nil {
		return err
	}
	_, err = io.Copy(w, rc)
	return err
}

func isZip(b []byte) bool { return bytes.HasPrefix(b, []byte("PK\x03\x04")) }

// manifest is dedupfn-action.json: what the launcher loads.
type manifest struct {
	Language string `json:"language"`
	Kind     string `json:"kind"`
	Main     string `json:"main"`
	// Entry is the file (or, with Package, the Node.js package directory)
	// holding main, relative to the code's directory.
	Entry   string `json:"entry"`
	Package bool   `json:"package,omitempty"`
}

// language returns the manifest's language.
func (m manifest) language() (language, error) {
	for _, l := range languages {
		if l.name == m.Language {
			return l, nil
		}
	}
	return language{}, fmt.Errorf("process: %s names unknown language %q", ManifestName, m.Language)
}

// maxManifest bounds the manifest read.
const maxManifest = 64 << 10

// readManifest reads the manifest of an unpacked code directory.
func readManifest(dir string) (manifest, error) {
	f, err := os.Open(filepath.Join(dir, ManifestName))
	if err != nil {
		return manifest{}, err
	}
	defer f.Close()
	return decodeManifest(f)
}

func decodeManifest(r io.Reader) (manifest, error) {
	var m manifest
	if err := json.NewDecoder(io.LimitReader(r, maxManifest)).Decode(&m); err != nil {
		return m, fmt.Errorf("process: read %s: %w", ManifestName, err)
	}
	return m, nil
}

// command is what a process of a function runs: argv (the executable
// first) and the address-space limit (RLIMIT_AS, 0 = none) it runs under.
type command struct {
	argv         []string
	addressSpace uint64
}

// command is how the runtime starts the unpacked executable at path under
// a memory limit of mem bytes (0 = none): itself, or a launcher script
// with its language's interpreter and memory flags.
func (r *Runtime) command(path string, mem uint64) (command, error) {
	for _, l := range languages {
		if filepath.Base(path) != l.launcher {
			continue
		}
		interp := *l.interpreter(&r.opts)
		if interp == "" {
			return command{}, fmt.Errorf("process: %s actions need %s, which the server did not find on its PATH", l.name, l.binary)
		}
		c := command{argv: []string{interp, path}, addressSpace: mem}
		if l.memory != nil && mem > 0 {
			flags, space := l.memory(mem)
			c.argv = slices.Concat([]string{interp}, flags, []string{path})
			c.addressSpace = space
		}
		return c, nil
	}
	return command{argv: []string{path}, addressSpace: mem}, nil
}

// nodeReserve is the address space V8 reserves beyond its heap (code
// range, thread stacks, cages): node does not start under an RLIMIT_AS of
// 512 MiB even with a small heap.
const nodeReserve = 1 << 30

// nodeMemory bounds node by its heap (--max-old-space-size, the memory
// limit), and its address space only loosely, by the heap and
// nodeReserve: V8 reserves far more address space than it uses.
func nodeMemory(mem uint64) ([]string, uint64) {
	return []string{"--max-old-space-size=" + strconv.FormatUint(max(mem>>20, 1), 10)}, mem + nodeReserve
}

// Prepare implements runtime.Preparer: code of a nodejs or python action
// (ActionCode) is refused when the server has no interpreter for it.
func (r *Runtime) Prepare(_ context.Context, fn runtime.Function) error {
	if !isZip(fn.Code) {
		return nil
	}
	zr, err := zip.NewReader(bytes.NewReader(fn.Code), int64(len(fn.Code)))
	if err != nil {
		return nil // unpack says why, as for any --exec zip
	}
	for _, f := range zr.File {
		if f.Name != ManifestName {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return runtime.Errorf(runtime.ClassInit, "process: open %s: %v", ManifestName, err)
		}
		m, err := decodeManifest(rc)
		rc.Close()
		if err != nil {
			return &runtime.Error{Class: runtime.ClassInit, Err: err}
		}
		l, err := m.language()
		if err != nil {
			return &runtime.Error{Class: runtime.ClassInit, Err: err}
		}
		if *l.interpreter(&r.opts) == "" {
			return runtime.Errorf(runtime.ClassInit, "process: kind %s needs %s, which the server did not find on its PATH", m.Kind, l.binary)
		}
	}
	return nil
}
