package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		json         bool
	}{
		{"DefaultNotTerminal", "", true},
		{"JSON", "json", true},
		{"Text", "text", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := newLogger(&buf, tc.format, slog.LevelInfo)
			if err != nil {
				t.Fatal(err)
			}
			l.With("activation", "a1", "fn", "thumb").Info("activation recorded", "bucket", "in", "key", "k")
			l.Debug("below the level")
			var m map[string]any
			isJSON := json.Unmarshal(buf.Bytes(), &m) == nil
			if isJSON != tc.json || strings.Count(buf.String(), "\n") != 1 {
				t.Fatalf("format %q wrote %q; want JSON %v, one line", tc.format, buf.String(), tc.json)
			}
			if tc.json && (m["activation"] != "a1" || m["fn"] != "thumb" || m["bucket"] != "in" || m["key"] != "k") {
				t.Fatalf("attributes missing: %v", m)
			}
		})
	}
	t.Run("PipeIsNotTerminal", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		l, err := newLogger(w, "", slog.LevelInfo)
		if err != nil {
			t.Fatal(err)
		}
		l.Info("hello")
		w.Close()
		b, _ := io.ReadAll(r)
		if !json.Valid(bytes.TrimSpace(b)) {
			t.Fatalf("stderr not a terminal: wrote %q, want JSON", b)
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		_, err := newLogger(io.Discard, "xml", slog.LevelInfo)
		if err == nil || err.Error() != `--log-format must be json or text, got "xml"` {
			t.Fatalf("bad format: %v", err)
		}
	})
}
