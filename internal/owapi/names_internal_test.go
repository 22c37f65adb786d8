package owapi

import (
	"encoding/json"
	"testing"
)

func TestFunctionName_Reverses(t *testing.T) {
	for _, tc := range []struct{ pkg, name, want string }{
		{"", "hello", "ow.hello"},
		{"utils", "echo", "ow.utils..echo"},
		{"", "a.b", "ow.a.2eb"},
		{"a", "b", "ow.a..b"},
		{"", "my action@v2", "ow.my.20action.40v2"},
		{"p.q", "x..y", "ow.p.2eq..x.2e.2ey"},
		{"", "_x", "ow._x"},
	} {
		got, err := functionName(tc.pkg, tc.name)
		if err != nil || got != tc.want {
			t.Fatalf("functionName(%q, %q) = %q, %v, want %q", tc.pkg, tc.name, got, err, tc.want)
		}
		pkg, name, ok := actionOf(got)
		if !ok || pkg != tc.pkg || name != tc.name {
			t.Fatalf("actionOf(%q) = %q, %q, %v, want %q, %q", got, pkg, name, ok, tc.pkg, tc.name)
		}
	}
	if _, err := functionName("", string(make([]byte, 200))); err == nil {
		t.Fatal("a name too long once mapped was accepted")
	}
}

func FuzzFunctionName(f *testing.F) {
	f.Add("", "hello")
	f.Add("a", "b.c")
	f.Fuzz(func(t *testing.T, pkg, name string) {
		if checkName(name) != nil || (pkg != "" && checkName(pkg) != nil) {
			return
		}
		fn, err := functionName(pkg, name)
		if err != nil {
			return
		}
		p, n, ok := actionOf(fn)
		if !ok || p != pkg || n != name {
			t.Fatalf("actionOf(functionName(%q, %q) = %q) = %q, %q, %v", pkg, name, fn, p, n, ok)
		}
	})
}

func TestParseFQN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"x", "/me/x"},
		{"p/x", "/me/p/x"},
		{"/ns/x", "/ns/x"},
		{"/ns/p/x", "/ns/p/x"},
		{"/_/x", "/me/x"},
	} {
		f, err := parseFQN(tc.in, "me")
		if err != nil || f.String() != tc.want {
			t.Fatalf("parseFQN(%q) = %v, %v, want %s", tc.in, f, err, tc.want)
		}
	}
	for _, bad := range []string{"/ns", "a/b/c", "/ns/a/b/c", ""} {
		if _, err := parseFQN(bad, "me"); err == nil {
			t.Fatalf("parseFQN(%q) accepted", bad)
		}
	}
}

func TestRunBuiltin(t *testing.T) {
	for _, tc := range []struct{ id, in, want string }{
		{"utils/echo", `{"a":1}`, `{"a":1}`},
		{"utils/echo", ``, `{}`},
		{"utils/sort", `{"lines":["b","a"]}`, `{"length":2,"lines":["a","b"]}`},
		{"utils/sort", `{}`, `{"length":0,"lines":[]}`},
		{"utils/cat", `{"lines":["a","b"]}`, `{"lines":["a","b"],"payload":"a\nb"}`},
		{"utils/head", `{"lines":["a","b","c"],"num":2}`, `{"lines":["a","b"]}`},
		{"utils/head", `{"lines":["a","b"]}`, `{"lines":["a"]}`},
		{"utils/split", `{"payload":"a,b","separator":","}`, `{"lines":["a","b"],"payload":"a,b"}`},
	} {
		got, err := runBuiltin(tc.id, json.RawMessage(tc.in))
		if err != nil || string(got) != tc.want {
			t.Fatalf("%s(%s) = %s, %v, want %s", tc.id, tc.in, got, err, tc.want)
		}
	}
	if _, err := runBuiltin("utils/sort", json.RawMessage(`{"lines":"x"}`)); err == nil {
		t.Fatal("sort of a string was accepted")
	}
	got, err := runBuiltin("utils/date", nil)
	var d map[string]string
	if err != nil || json.Unmarshal(got, &d) != nil || len(d["date"]) != 24 {
		t.Fatalf("date = %s, %v", got, err)
	}
}
