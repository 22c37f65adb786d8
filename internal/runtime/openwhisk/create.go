package openwhisk

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"unicode/utf8"

	"github.com/dedupfn/dedupfn/internal/runtime"
)

// Kinds for CreateAction.
const (
	// KindNative is a native ("blackbox" actionloop) action: the code is
	// an executable or a zip with exec at its root, run by
	// NativeImage.
	KindNative = "native"
	// NativeImage is the OpenWhisk image that runs native actions.
	NativeImage = "openwhisk/dockerskeleton"
)

// CreateAction creates or updates (PUT ...?overwrite=true) the action name
// ("[/NS/][PKG/]ACTION") on the controller at api, authenticated with auth
// ("UUID:KEY"), and returns the action's new version. kind "native" (or
// "blackbox") uploads code as a native action: a zip with exec at its
// root, made here when code is a bare executable. Any other kind
// ("nodejs:20", "python:3", ...) uploads code as that runtime's source
// (base64 with binary=true when it is not UTF-8 text). params become the
// action's default parameters. client nil means http.DefaultClient.
func CreateAction(ctx context.Context, client *http.Client, api, auth, name, kind string, code []byte, params map[string]string) (string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	a, err := ParseAction(name)
	if err != nil {
		return "", err
	}
	u, err := parseAPI(api)
	if err != nil {
		return "", err
	}
	if auth == "" {
		return "", fmt.Errorf("openwhisk: create %s: no auth: set %s to UUID:KEY", a, EnvAuth)
	}
	exec := map[string]any{"kind": kind}
	switch kind {
	case KindNative, "blackbox":
		if !bytes.HasPrefix(code, []byte("PK\x03\x04")) {
			if code, err = zipExec(code); err != nil {
				return "", fmt.Errorf("openwhisk: create %s: %w", a, err)
			}
		}
		exec = map[string]any{"kind": "blackbox", "image": NativeImage, "binary": true,
			"code": base64.StdEncoding.EncodeToString(code)}
	case "":
		return "", fmt.Errorf("openwhisk: create %s: kind must be %q or an OpenWhisk runtime kind such as nodejs:20", a, KindNative)
	default:
		if utf8.Valid(code) && !bytes.HasPrefix(code, []byte("PK\x03\x04")) {
			exec["code"], exec["binary"] = string(code), false
		} else {
			exec["code"], exec["binary"] = base64.StdEncoding.EncodeToString(code), true
		}
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ps := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		ps = append(ps, map[string]any{"key": k, "value": params[k]})
	}
	body, err := json.Marshal(map[string]any{"exec": exec, "parameters": ps})
	if err != nil {
		return "", fmt.Errorf("openwhisk: create %s: encode: %w", a, err)
	}
	u.Path += a.path()
	u.RawQuery = "overwrite=true"
	status, resp, err := call(ctx, client, auth, http.MethodPut, u.String(), body)
	if err != nil {
		return "", fmt.Errorf("openwhisk: create %s: %w", a, err)
	}
	if status != http.StatusOK && status != http.StatusCreated {
		if status == http.StatusNotFound {
			return "", runtime.Errorf(runtime.ClassInit, "openwhisk: create %s: namespace or package not found: %s", a, errorText(resp))
		}
		return "", statusError(status, resp, "create", a)
	}
	var rec actionRecord
	if err := json.Unmarshal(resp, &rec); err != nil {
		return "", fmt.Errorf("openwhisk: create %s: decode response: %w", a, err)
	}
	return rec.Version, nil
}

// zipExec wraps an executable into a native action zip.
func zipExec(exe []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "exec", Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, fmt.Errorf("zip exec: %w", err)
	}
	if _, err := w.Write(exe); err != nil {
		return nil, fmt.Errorf("zip exec: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zip exec: %w", err)
	}
	return buf.Bytes(), nil
}
