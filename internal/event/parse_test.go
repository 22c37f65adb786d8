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

// Issue 20, item 2: object-removed events are events, parsed and cleaned
// as created ones are; a delete marker in a versioned bucket is a delete.
func TestParse_Removed(t *testing.T) {
	for _, tc := range []struct {
		file, name, key, version, time string
	}{
		{"minio_real_delete.json", "s3:ObjectRemoved:Delete", "holiday photos/Zürich (1)+x.jpg", "", ""},
		{"minio_real_delete_marker.json", "s3:ObjectRemoved:DeleteMarkerCreated", "big.bin",
			"7934662f-2ea3-4b8c-8328-d01bd2b99aa6", "2026-11-25T22:48:41.473Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			r, err := event.ParsePayload(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Events) != 1 || len(r.Skipped) != 0 {
				t.Fatalf("got events %+v, skipped %v; want 1 event", r.Events, r.Skipped)
			}
			ev := r.Events[0]
			if !ev.Removed() || ev.Name != tc.name || ev.Bucket != "images" || ev.Key != tc.key ||
				ev.VersionID != tc.version || ev.Size != 0 || ev.ETag != "" || ev.SHA256 != "" || ev.Sequencer == "" {
				t.Errorf("event = %+v", ev)
			}
			if !ev.HasTime() || (tc.time != "" && ev.Time.Format("2006-01-02T15:04:05.000Z07:00") != tc.time) {
				t.Errorf("time = %v, want the record's %s", ev.Time, tc.time)
			}
		})
	}
}

func TestIsRemoved(t *testing.T) {
	for _, tc := range []struct {
		name             string
		created, removed bool
	}{
		{"s3:ObjectCreated:Put", true, false},
		{"", true, false},
		{"s3:ObjectRemoved:Delete", false, true},
		{"s3:ObjectRemoved:DeleteMarkerCreated", false, true},
		{"s3:ObjectRemoved:DeleteAllVersions", false, true},
		// MinIO's delete of a missing key or version: nothing was removed.
		{"s3:ObjectRemoved:NoOP", false, false},
		{"ObjectRemoved:Delete", false, true},
		{"s3:ObjectAcl:Put", false, false},
		{"s3:ObjectRestore:Completed", false, false},
		{"s3:Replication:OperationFailedReplication", false, false},
		{"s3:TestEvent", false, false},
	} {
		if got := event.IsRemoved(tc.name); got != tc.removed {
			t.Errorf("IsRemoved(%q) = %v, want %v", tc.name, got, tc.removed)
		}
		if got := event.IsCreated(tc.name); got != tc.created {
			t.Errorf("IsCreated(%q) = %v, want %v", tc.name, got, tc.created)
		}
		if got := (event.Event{Name: tc.name}).Removed(); got != tc.removed {
			t.Errorf("Event{Name: %q}.Removed() = %v, want %v", tc.name, got, tc.removed)
		}
	}
}

func TestNormalize_Names(t *testing.T) {
	const del = "s3:ObjectRemoved:Delete"
	for _, tc := range []struct {
		name, ev, key, want string
		err                 error
	}{
		{name: "Created", ev: "s3:ObjectCreated:Put", key: "t/a.txt", want: "t/a.txt"},
		{name: "Delete", ev: del, key: "t/a.txt", want: "t/a.txt"},
		{name: "DeleteMarker", ev: "s3:ObjectRemoved:DeleteMarkerCreated", key: "t/a.txt", want: "t/a.txt"},
		{name: "DeleteCleansKey", ev: del, key: "t/x/../b.txt", want: "t/b.txt"},
		{name: "DeleteOutsideBucket", ev: del, key: "a/../../etc", err: event.ErrMalformed},
		{name: "DeleteFolderMarker", ev: del, key: "t/dir/", err: event.ErrNotCreated},
		{name: "DeleteStaged", ev: del, key: event.StagingPrefix + "abc", err: event.ErrNotCreated},
		{name: "DeleteStagedAfterCleaning", ev: del, key: "x/../" + event.StagingPrefix + "abc", err: event.ErrNotCreated},
		{name: "NoOP", ev: "s3:ObjectRemoved:NoOP", key: "t/a.txt", err: event.ErrNotCreated},
		{name: "Acl", ev: "s3:ObjectAcl:Put", key: "t/a.txt", err: event.ErrNotCreated},
		{name: "Restore", ev: "s3:ObjectRestore:Post", key: "t/a.txt", err: event.ErrNotCreated},
		{name: "Replication", ev: "s3:Replication:OperationCompletedReplication", key: "t/a.txt", err: event.ErrNotCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A removed event carries no size, etag or checksum.
			got, err := event.Normalize(event.Event{Name: tc.ev, Bucket: "b", Key: tc.key})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Normalize = %+v, %v; want %v", got, err, tc.err)
				}
				return
			}
			if err != nil || got.Key != tc.want || got.Name != tc.ev || got.Time.IsZero() {
				t.Fatalf("Normalize = %+v, %v; want key %q", got, err, tc.want)
			}
			if got.Removed() != event.IsRemoved(tc.ev) {
				t.Errorf("Removed() = %v for %s", got.Removed(), tc.ev)
			}
		})
	}
}
