package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dedupfn/dedupfn/internal/event"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the parser's output")

// golden is what a testdata/NAME.golden file holds: the parse result, or
// the error text of a malformed payload.
type golden struct {
	Events  []event.Event `json:"events,omitempty"`
	Skipped []string      `json:"skipped,omitempty"`
	Error   string        `json:"error,omitempty"`
}

func TestParse_Golden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.json")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			r, err := event.ParsePayload(data)
			var got golden
			if err != nil {
				if !errors.Is(err, event.ErrMalformed) {
					t.Fatalf("error does not wrap ErrMalformed: %v", err)
				}
				if len(r.Events) != 0 {
					t.Fatalf("events returned with an error: %+v", r.Events)
				}
				got.Error = err.Error()
			} else {
				got.Events, got.Skipped = r.Events, r.Skipped
			}
			if strings.HasPrefix(name, "malformed_") != (err != nil) {
				t.Fatalf("malformed_* files must fail and others parse; err = %v", err)
			}
			out, err := json.MarshalIndent(got, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, '\n')
			goldenFile := strings.TrimSuffix(file, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(goldenFile, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenFile)
			if err != nil {
				t.Fatalf("%v (run go test -run TestParse_Golden -update)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("parse %s:\n got: %s\nwant: %s", file, out, want)
			}
			// Parse agrees with ParsePayload.
			evs, perr := event.Parse(data)
			if (perr != nil) != (got.Error != "") || len(evs) != len(got.Events) {
				t.Errorf("Parse = %d events, %v; ParsePayload = %d events, %q", len(evs), perr, len(got.Events), got.Error)
			}
		})
	}
}

func TestParse_Fields(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "minio_put.json"))
	if err != nil {
		t.Fatal(err)
	}
	evs, err := event.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Bucket != "images" || ev.Key != "cat.jpg" || ev.Size != 48213 || ev.ETag != "5d41402abc4b2a76b9719d911017c592" {
		t.Errorf("event = %+v", ev)
	}
	// User metadata survives Normalize with its prefix stripped, so the
	// pipeline's self-trigger check sees dedupfn's own marker; system
	// entries such as content-type are not user metadata.
	if got := ev.Metadata[event.MetaOutputOf]; got != "abc123" {
		t.Errorf("Metadata[%q] = %q, want abc123 (metadata %v)", event.MetaOutputOf, got, ev.Metadata)
	}
	if _, ok := ev.Metadata["content-type"]; ok {
		t.Errorf("content-type kept as user metadata: %v", ev.Metadata)
	}
	if ev.Time.Format("2006-01-02T15:04:05.000Z07:00") != "2025-11-25T21:14:03.512Z" {
		t.Errorf("time = %v", ev.Time)
	}
}

func TestParse_KeyDecoding(t *testing.T) {
	tests := []struct {
		name, encoded, want string
	}{
		{"Plain", "a.txt", "a.txt"},
		{"PlusIsSpace", "my+file.txt", "my file.txt"},
		{"EncodedPlus", "a%2Bb", "a+b"},
		{"Slash", "dir%2Fsub%2Ff", "dir/sub/f"},
		{"Unicode", "%E6%97%A5%E6%9C%AC.txt", "日本.txt"},
		{"RawUnicode", "日本.txt", "日本.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
				"eventName": "s3:ObjectCreated:Put",
				"s3": map[string]any{
					"bucket": map[string]any{"name": "b"},
					"object": map[string]any{"key": tt.encoded},
				},
			}}})
			evs, err := event.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Key != tt.want {
				t.Fatalf("got %+v, want key %q", evs, tt.want)
			}
			if evs[0].Time.IsZero() {
				t.Error("event without eventTime has zero Time; want the time it was parsed")
			}
		})
	}
}

// Item 4 of issue 17: keys are cleaned as the store cleans them.
func TestCleanKey(t *testing.T) {
	for _, tc := range []struct{ key, want, err string }{
		{key: "t/c.txt", want: "t/c.txt"},
		{key: ".dedupfn/staging/../../t/c.txt", want: "t/c.txt"},
		{key: "t/x/../b.txt", want: "t/b.txt"},
		{key: "./a//b", want: "a/b"},
		{key: "/lead", want: "lead"},
		{key: "..x/y", want: "..x/y"},
		{key: "a/../../etc", err: "outside its bucket"},
		{key: "..", err: "outside its bucket"},
		{key: "a/..", err: "outside its bucket"},
	} {
		got, err := event.CleanKey(tc.key)
		if tc.err != "" {
			if !errors.Is(err, event.ErrMalformed) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("CleanKey(%q) = %q, %v; want an error %q", tc.key, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CleanKey(%q) = %q, %v; want %q", tc.key, got, err, tc.want)
		}
	}
}
