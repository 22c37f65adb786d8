package event

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TestEventName is the name of the payload S3 sends once when a bucket
// notification is configured; it carries no object and is skipped.
const TestEventName = "s3:TestEvent"

// metaPrefix is how MinIO and S3 spell user metadata keys in events
// (MinIO canonicalises them as "X-Amz-Meta-Name"); other entries of
// userMetadata (content-type, ...) are system headers, not user metadata.
const metaPrefix = "x-amz-meta-"

// Result is what one notification payload holds.
type Result struct {
	// Events are the object-created and object-removed events (see
	// Event.Removed), already passed through Normalize, in payload order.
	// Source is left empty: the caller sets it.
	Events []Event `json:"events"`
	// Skipped names the well-formed records that are neither object-created
	// nor object-removed (e.g. "s3:ObjectAcl:Put", "s3:ObjectRemoved:NoOP")
	// and s3:TestEvent payloads. They need no processing: a source
	// acknowledges them like handled events.
	Skipped []string `json:"skipped,omitempty"`
}

// Parse returns the object-created and object-removed events in one
// notification payload. See ParsePayload for the accepted shapes; other
// records and s3:TestEvent payloads are dropped without error, so a
// payload may yield no events and a nil error: the source then simply
// acknowledges it. Every error wraps ErrMalformed, and such a payload can
// never succeed: sources should report it and move past it.
func Parse(data []byte) ([]Event, error) {
	r, err := ParsePayload(data)
	return r.Events, err
}

// ParsePayload parses one notification payload, which is one of:
//
//   - a MinIO bucket notification, as MinIO's Kafka and webhook targets
//     send it: {"EventName": ..., "Key": "bucket/key", "Records": [...]};
//   - a plain AWS S3 event: {"Records": [...]};
//   - an S3 test event: {"Event": "s3:TestEvent", ...} (skipped);
//   - a CloudEvents 1.0 JSON envelope (structured mode) whose data (or
//     data_base64) is one of the above or a single S3 record.
//
// Object keys are URL-decoded (S3 and MinIO encode them like a query,
// with "+" for space). Parsing is all or nothing: if any record is
// malformed the error (wrapping ErrMalformed) names it and no event is
// returned, because a payload cannot be half acknowledged.
func ParsePayload(data []byte) (Result, error) {
	r, err := parse(data, true, "")
	if err != nil {
		return Result{}, err
	}
	// Like Normalize: an event without any time gets the time it was seen.
	for i := range r.Events {
		if r.Events[i].Time.IsZero() {
			r.Events[i].Time = time.Now().UTC()
		}
	}
	return r, nil
}

// probe tells the payload shapes apart. Records and Data stay raw so that
// "absent" and "null" can be told apart from an empty array.
type probe struct {
	SpecVersion *string         `json:"specversion"`
	Records     json.RawMessage `json:"Records"`
	Event       string          `json:"Event"`
	S3          json.RawMessage `json:"s3"`
}

// cloudEvent is the part of a CloudEvents 1.0 structured-mode envelope we use.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	Type            string          `json:"type"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	DataBase64      *string         `json:"data_base64"`
}

// record is one entry of an S3/MinIO Records array.
type record struct {
	EventTime string    `json:"eventTime"`
	EventName string    `json:"eventName"`
	S3        *s3Detail `json:"s3"`
}

type s3Detail struct {
	Bucket struct {
		Name string `json:"name"`
	} `json:"bucket"`
	Object struct {
		Key          string            `json:"key"`
		Size         int64             `json:"size"`
		ETag         string            `json:"eTag"`
		ContentType  string            `json:"contentType"`
		UserMetadata map[string]string `json:"userMetadata"`
		VersionID    string            `json:"versionId"`
		Sequencer    string            `json:"sequencer"`
	} `json:"object"`
}

const expectedShapes = "a MinIO/S3 notification with a Records array, an s3:TestEvent, or a CloudEvents envelope"

// parse parses data; allowCE is false inside a CloudEvent's data (no
// nesting), where a bare S3 record is accepted and ceType/ceTime fill
// what the record lacks.
func parse(data []byte, allowCE bool, ceType string) (Result, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return Result{}, fmt.Errorf("%w: expected a JSON object (%s), got %s", ErrMalformed, expectedShapes, describe(data))
	}
	var p probe
	if err := json.Unmarshal(data, &p); err != nil {
		return Result{}, fmt.Errorf("%w: expected %s: %v", ErrMalformed, expectedShapes, err)
	}
	switch {
	case p.SpecVersion != nil:
		if !allowCE {
			return Result{}, fmt.Errorf("%w: cloudevent data must not be another cloudevent", ErrMalformed)
		}
		return parseCloudEvent(data)
	case p.Records != nil:
		var raw []json.RawMessage
		if err := json.Unmarshal(p.Records, &raw); err != nil || raw == nil {
			return Result{}, fmt.Errorf("%w: Records must be an array of S3 event records, got %s", ErrMalformed, describe(p.Records))
		}
		var r Result
		for i, rec := range raw {
			if err := parseRecord(&r, rec, ceType); err != nil {
				return Result{}, fmt.Errorf("%w: Records[%d]: %w", ErrMalformed, i, err)
			}
		}
		return r, nil
	case p.Event == TestEventName:
		return Result{Skipped: []string{TestEventName}}, nil
	case p.S3 != nil && !allowCE:
		var r Result
		if err := parseRecord(&r, data, ceType); err != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		return r, nil
	default:
		return Result{}, fmt.Errorf("%w: expected %s, got an object without Records", ErrMalformed, expectedShapes)
	}
}

func parseCloudEvent(data []byte) (Result, error) {
	var ce cloudEvent
	if err := json.Unmarshal(data, &ce); err != nil {
		return Result{}, fmt.Errorf("%w: cloudevent: %v", ErrMalformed, err)
	}
	if ce.SpecVersion != "1.0" {
		return Result{}, fmt.Errorf("%w: cloudevent: expected specversion \"1.0\", got %q", ErrMalformed, ce.SpecVersion)
	}
	if ct := ce.DataContentType; ct != "" && !strings.Contains(strings.ToLower(ct), "json") {
		return Result{}, fmt.Errorf("%w: cloudevent: expected JSON data, got datacontenttype %q", ErrMalformed, ct)
	}
	inner := []byte(ce.Data)
	switch {
	case ce.DataBase64 != nil:
		b, err := base64.StdEncoding.DecodeString(*ce.DataBase64)
		if err != nil {
			return Result{}, fmt.Errorf("%w: cloudevent: data_base64: %v", ErrMalformed, err)
		}
		inner = b
	case len(inner) > 0 && inner[0] == '"':
		// Some emitters put the JSON document in a string.
		var s string
		if err := json.Unmarshal(inner, &s); err != nil {
			return Result{}, fmt.Errorf("%w: cloudevent: data: %v", ErrMalformed, err)
		}
		inner = []byte(s)
	}
	if len(inner) == 0 || string(inner) == "null" {
		return Result{}, fmt.Errorf("%w: cloudevent: expected data holding an S3 record or Records, got none", ErrMalformed)
	}
	r, err := parse(inner, false, nameFromCEType(ce.Type))
	if err != nil {
		return Result{}, fmt.Errorf("cloudevent data: %w", err)
	}
	if ce.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, ce.Time)
		if err != nil {
			return Result{}, fmt.Errorf("%w: cloudevent: time %q: expected RFC 3339", ErrMalformed, ce.Time)
		}
		for i := range r.Events {
			if r.Events[i].Time.IsZero() {
				r.Events[i].Time = t.UTC()
			}
		}
	}
	return r, nil
}

// nameFromCEType maps a CloudEvents type such as
// "com.amazonaws.s3.ObjectCreated:Put" or "...ObjectRemoved:Delete" to an
// S3 event name, for records that carry none. Other types are kept as they
// are (and so are skipped as neither created nor removed).
func nameFromCEType(t string) string {
	for _, kind := range []string{"ObjectCreated", "ObjectRemoved"} {
		if i := strings.Index(t, kind); i >= 0 {
			return "s3:" + t[i:]
		}
	}
	return t
}

// parseRecord appends the record in raw to r, as an event or as skipped;
// defName is the event name for records without one. Times are kept zero
// when absent, so that a CloudEvent's own time can fill them (ParsePayload
// fills the rest).
func parseRecord(r *Result, raw json.RawMessage, defName string) error {
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("expected an S3 event record object: %v", err)
	}
	name := rec.EventName
	if name == "" {
		name = defName
	}
	if name == TestEventName {
		r.Skipped = append(r.Skipped, name)
		return nil
	}
	if rec.S3 == nil {
		return fmt.Errorf("expected an \"s3\" object with bucket and object")
	}
	if !IsCreated(name) && !IsRemoved(name) {
		r.Skipped = append(r.Skipped, name)
		return nil
	}
	if rec.S3.Bucket.Name == "" {
		return fmt.Errorf("expected s3.bucket.name, got none")
	}
	o := rec.S3.Object
	if o.Key == "" {
		return fmt.Errorf("expected s3.object.key, got none")
	}
	key, err := url.QueryUnescape(o.Key)
	if err != nil {
		return fmt.Errorf("object key %q: expected URL-encoded key: %v", o.Key, err)
	}
	if o.Size < 0 {
		return fmt.Errorf("object size must be >= 0, got %d", o.Size)
	}
	ev := Event{
		Name:        name,
		Bucket:      rec.S3.Bucket.Name,
		Key:         key,
		VersionID:   o.VersionID,
		ETag:        o.ETag,
		Sequencer:   o.Sequencer,
		Size:        o.Size,
		ContentType: o.ContentType,
	}
	if rec.EventTime != "" {
		t, err := time.Parse(time.RFC3339Nano, rec.EventTime)
		if err != nil {
			return fmt.Errorf("eventTime %q: expected RFC 3339 time", rec.EventTime)
		}
		ev.Time = t.UTC()
	}
	for k, v := range o.UserMetadata {
		if len(k) > len(metaPrefix) && strings.EqualFold(k[:len(metaPrefix)], metaPrefix) {
			if ev.Metadata == nil {
				ev.Metadata = map[string]string{}
			}
			ev.Metadata[k] = v
		}
	}
	// Normalize would fill a missing time with now; keep it zero here (see
	// above). Bucket, key and name were checked; a folder marker or a
	// staged output (created or removed) is well-formed, only no input:
	// skipped, so that it does not fail the payload's other records.
	zero := ev.Time.IsZero()
	ev, err = Normalize(ev)
	if errors.Is(err, ErrNotCreated) {
		r.Skipped = append(r.Skipped, name)
		return nil
	}
	if err != nil {
		return err
	}
	if zero {
		ev.Time = time.Time{}
	}
	r.Events = append(r.Events, ev)
	return nil
}

// describe summarises unexpected input for an error message.
func describe(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "empty input"
	}
	const max = 40
	s := string(b)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}
