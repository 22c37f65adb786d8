package owapi

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// entityNameRE is OpenWhisk's entity name: word characters, then any of
// word characters, @, space, dot and dash, not ending in a space.
var entityNameRE = regexp.MustCompile(`^([\w]|[\w][\w@ .-]{0,254}[\w@.-])$`)

// checkName refuses a name OpenWhisk would refuse.
func checkName(name string) error {
	if !entityNameRE.MatchString(name) {
		return withStatus(400, fmt.Errorf("%s: %q", msgEntityIllegal, name))
	}
	return nil
}

// Registry names of OpenWhisk entities. An action is the registry
// function "ow." + its name, or "ow." + package + ".." + name in a
// package; a rule to an object trigger is the bucket function "owrule."
// + the rule's name. Characters the registry does not allow in names
// (anything but letters, digits, _ and -) are written ".XX" per byte, in
// hex: "my action@v2" is "ow.my.20action.40v2". The escapes never hold
// "..", so the package separator is unambiguous and the mapping
// reverses (activations name their action by it). A name longer than
// the registry's 128 characters once mapped is refused.
const (
	actionPrefix = "ow."
	rulePrefix   = "owrule."
	pkgSep       = ".."
	maxFnName    = 128
)

// escapeName writes s in the registry's name characters.
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('.')
		b.WriteString(hex.EncodeToString([]byte{c}))
	}
	return b.String()
}

// unescapeName reverses escapeName.
func unescapeName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '.' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		v, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.Write(v)
		i += 2
	}
	return b.String(), true
}

// functionName is the registry name of action pkg/name (pkg may be "").
func functionName(pkg, name string) (string, error) {
	fn := actionPrefix + escapeName(name)
	if pkg != "" {
		fn = actionPrefix + escapeName(pkg) + pkgSep + escapeName(name)
	}
	if len(fn) > maxFnName {
		return "", withStatus(400, fmt.Errorf("action name %q is too long for dedupfn: %d characters once mapped to a function name (at most %d)", joinPath(pkg, name), len(fn), maxFnName))
	}
	return fn, nil
}

// ruleFunctionName is the registry name of the bucket function of rule.
func ruleFunctionName(rule string) (string, error) {
	fn := rulePrefix + escapeName(rule)
	if len(fn) > maxFnName {
		return "", withStatus(400, fmt.Errorf("rule name %q is too long for dedupfn: %d characters once mapped to a function name (at most %d)", rule, len(fn), maxFnName))
	}
	return fn, nil
}

// actionOf reverses functionName: the action (package and name) a
// registry function is, or ok false for other functions.
func actionOf(function string) (pkg, name string, ok bool) {
	rest, found := strings.CutPrefix(function, actionPrefix)
	if !found {
		return "", "", false
	}
	p, n, hasPkg := strings.Cut(rest, pkgSep)
	if !hasPkg {
		n, p = p, ""
	}
	if n, ok = unescapeName(n); !ok {
		return "", "", false
	}
	if p, ok = unescapeName(p); !ok {
		return "", "", false
	}
	return p, n, true
}

// joinPath is "pkg/name", or name without a package.
func joinPath(pkg, name string) string {
	if pkg == "" {
		return name
	}
	return pkg + "/" + name
}

// splitPath splits an action's path below its namespace ("name" or
// "pkg/name") and checks both names.
func splitPath(path string) (pkg, name string, err error) {
	parts := strings.Split(path, "/")
	switch len(parts) {
	case 1:
		name = parts[0]
	case 2:
		pkg, name = parts[0], parts[1]
		if err := checkName(pkg); err != nil {
			return "", "", err
		}
	default:
		return "", "", withStatus(400, fmt.Errorf("%s: %q", msgEntityIllegal, path))
	}
	return pkg, name, checkName(name)
}

// fqn is a fully qualified entity name: namespace, package, name.
type fqn struct {
	ns, pkg, name string
}

// String is the name as OpenWhisk writes it: /ns/pkg/name.
func (f fqn) String() string { return "/" + f.ns + "/" + joinPath(f.pkg, f.name) }

// path is "ns/pkg/name" (an activation's path annotation).
func (f fqn) path() string { return f.ns + "/" + joinPath(f.pkg, f.name) }

// parseFQN reads "/ns/name", "/ns/pkg/name", "pkg/name" or "name" (the
// last two in namespace ns); "_" as a namespace is ns.
func parseFQN(s, ns string) (fqn, error) {
	var f fqn
	var err error
	if rest, abs := strings.CutPrefix(s, "/"); abs {
		first, path, ok := strings.Cut(rest, "/")
		if !ok || first == "" {
			return f, withStatus(400, fmt.Errorf("The fully qualified name of the entity must contain at least the namespace and the name of the entity: %q", s))
		}
		if first != "_" {
			ns = first
		}
		s = path
	}
	f.ns = ns
	f.pkg, f.name, err = splitPath(s)
	return f, err
}
