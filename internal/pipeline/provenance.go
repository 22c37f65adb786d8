package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// Provenance lives in the index, the one source of truth about what
// dedupfn wrote (an object's metadata is the uploader's to set). Three
// kinds of documents are written for every output: before the output
// itself where it triggers a function, so that its event, however early,
// finds them; else with the event's last write (see noteOutput):
//
//   - outputDocKind, under outputDocID(bucket, key): the provenance of the
//     object at that key (its bytes' SHA-256, its input, function, stage,
//     the activation that delivered it). It says the object at that key
//     with those bytes is dedupfn's output, and so where its pipeline is.
//   - derivedDocKind, under outputDocID(input) + "." + outputDocID(output):
//     the edge from an input to an output made from it, found by the
//     input's prefix (deletes, lineage).
//   - copyDocKind, under dedupKey + "." + outputDocID(output): an object
//     holding a recorded result's bytes, found by the record's key, so a
//     record whose output is deleted can be re-pointed to a live copy.
//
// A document written before an output write that then failed names
// bytes that are not there and matches nothing.
const (
	outputDocKind  = "output"
	derivedDocKind = "derived"
	copyDocKind    = "copy"
)

// objectRef names an object in provenance documents.
type objectRef struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
	SHA256 string `json:"sha256,omitempty"`
}

// provenance is the outputDocKind document of one output object.
type provenance struct {
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	SHA256   string `json:"sha256"`
	Tenant   string `json:"tenant,omitempty"`
	Function string `json:"function,omitempty"`
	Version  string `json:"version,omitempty"`
	// Stage is the writing function's stage (activation.Record.Stage).
	Stage int       `json:"stage,omitempty"`
	Input objectRef `json:"input"`
	Root  objectRef `json:"root"`
	// Activation delivered the object (a run or a hit); Cause is the
	// activation that wrote its input, empty for an upload.
	Activation string `json:"activation,omitempty"`
	Cause      string `json:"cause,omitempty"`
	// DedupKey is the record whose result the object holds.
	DedupKey string `json:"dedup_key,omitempty"`
	// Written is when dedupfn wrote the object: the time of the event its
	// write makes for the functions downstream, whichever way it comes
	// (in-process, or from the store's notification), so both are one.
	Written time.Time `json:"written"`
}

// derivedDoc is the derivedDocKind document of one input → output edge.
type derivedDoc struct {
	Bucket   string `json:"bucket"`
	Key      string `json:"key"`
	Tenant   string `json:"tenant"`
	Function string `json:"function"`
	Stage    int    `json:"stage"`
}

func outputDocID(bucket, key string) string {
	h := sha256.Sum256([]byte(bucket + "\x00" + key))
	return hex.EncodeToString(h[:16])
}

func derivedDocID(in, out objectRef) string {
	return outputDocID(in.Bucket, in.Key) + "." + outputDocID(out.Bucket, out.Key)
}

func copyDocID(dedupKey string, out objectRef) string {
	return dedupKey + "." + outputDocID(out.Bucket, out.Key)
}

// link is where an event's object sits in a pipeline: nothing for an
// upload; for dedupfn's own output, its provenance.
type link struct {
	prov *provenance // nil: an upload
}

// stage is the stage of the functions the object triggers.
func (l link) stage() int {
	if l.prov == nil {
		return 1
	}
	return l.prov.Stage + 1
}

// provenanceFor is the provenance of the output j writes at bucket/key
// with SHA-256 sum.
func provenanceFor(j *job, bucket, key, sum string) *provenance {
	root := objectRef{Bucket: j.ev.Bucket, Key: j.ev.Key}
	if j.rec.Root != nil {
		root = objectRef{Bucket: j.rec.Root.Bucket, Key: j.rec.Root.Key}
	}
	return &provenance{
		Bucket: bucket, Key: key, SHA256: sum, Tenant: j.fn.Tenant, Function: j.fn.Name, Version: j.fn.Version,
		Stage:      max(j.rec.Stage, 1),
		Input:      objectRef{Bucket: j.ev.Bucket, Key: j.ev.Key, SHA256: j.ev.SHA256},
		Root:       root,
		Activation: j.rec.ID, Cause: j.rec.Cause, DedupKey: j.rec.Key,
		Written: time.Now().UTC(),
	}
}

// noteOutput notes the provenance of the output j is about to write at
// bucket/key with SHA-256 sum; triggers is whether that object triggers
// a function (p.triggers), replaces whether an earlier output is there
// (checkTarget's ETag). It returns the documents that are still to
// be written, with the write that ends j (Completion.Docs on a run, the
// activation record's on a hit: one commit), or nil.
//
// An output that triggers a function has them written now, before the
// output itself, so that neither its event (which may arrive before the
// write returns) nor the reconciler takes it for an upload. An output
// that triggers nothing needs them only for deletes and lineage, which
// may find them one commit later (with --reconcile, the reconciler
// redoes a delete that missed them): each event then waits for one fsync
// round fewer. A
// crash before that commit leaves the event unacknowledged, and its
// redelivery writes the output and the documents again.
func (p *Pipeline) noteOutput(ctx context.Context, j *job, bucket, key, sum string, triggers, replaces bool) ([]index.Doc, error) {
	prov := provenanceFor(j, bucket, key, sum)
	if triggers && replaces {
		if err := p.keepFirstWrite(ctx, prov); err != nil {
			return nil, err
		}
	}
	out := objectRef{Bucket: bucket, Key: key}
	docs := []struct {
		kind, id string
		doc      any
	}{
		{derivedDocKind, derivedDocID(prov.Input, out), derivedDoc{Bucket: bucket, Key: key, Tenant: prov.Tenant, Function: prov.Function, Stage: prov.Stage}},
		{outputDocKind, outputDocID(bucket, key), prov},
	}
	if prov.DedupKey != "" {
		docs = append(docs, struct {
			kind, id string
			doc      any
		}{copyDocKind, copyDocID(prov.DedupKey, out), objectRef{Bucket: bucket, Key: key, SHA256: sum}})
	}
	put := make([]index.Doc, len(docs))
	for i, d := range docs {
		doc, err := json.Marshal(d.doc)
		if err != nil {
			return nil, runtime.Errorf(runtime.ClassPlatform, "note output %s/%s: %v", bucket, key, err)
		}
		put[i] = index.Doc{Kind: d.kind, ID: d.id, Doc: doc}
	}
	j.prov = prov
	if !triggers {
		return put, nil
	}
	// One write for all of them (one shared commit on bolt, one statement
	// on PostgreSQL).
	cctx, cancel := p.callCtx(ctx)
	defer cancel()
	if err := p.cfg.Index.PutDocs(cctx, put); err != nil {
		return nil, runtime.Errorf(runtime.ClassPlatform, "note output %s/%s: %v", bucket, key, err)
	}
	return nil, nil
}

// keepFirstWrite gives prov the time of the note already at its key if
// that note is the same activation's output with the same bytes: its
// event's redelivery writing the output again after a crash. The store
// may have published the first write's event, and a next stage handled
// it at that time; the rewrite's event (in-process, or the store's) is
// then the same event, found recorded, not a new upload of the output.
func (p *Pipeline) keepFirstWrite(ctx context.Context, prov *provenance) error {
	earlier, err := p.provenanceAt(ctx, prov.Bucket, prov.Key)
	if err != nil {
		return runtime.Errorf(runtime.ClassPlatform, "note output %s/%s: %v", prov.Bucket, prov.Key, err)
	}
	if earlier != nil && earlier.Activation == prov.Activation && earlier.SHA256 == prov.SHA256 {
		prov.Written = earlier.Written
	}
	return nil
}

// triggers reports whether an object at bucket/key triggers a function:
// match's answer, without its log line for a function out of scope
// (match, which runs it, logs that once per event).
func (p *Pipeline) triggers(bucket, key string) bool {
	return slices.ContainsFunc(p.cfg.Registry.Match(bucket, key), p.inScope)
}

func (p *Pipeline) deleteDoc(ctx context.Context, kind, id string) error {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	if err := p.cfg.Index.DeleteDoc(ctx, kind, id); err != nil && !errors.Is(err, index.ErrNotFound) {
		return err
	}
	return nil
}

// provenanceAt returns the provenance noted for the object at
// bucket/key, or nil when dedupfn noted none there.
func (p *Pipeline) provenanceAt(ctx context.Context, bucket, key string) (*provenance, error) {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	doc, err := p.cfg.Index.GetDoc(ctx, outputDocKind, outputDocID(bucket, key))
	switch {
	case errors.Is(err, index.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("pipeline: look up provenance of %s/%s: %w", bucket, key, err)
	}
	var prov provenance
	if json.Unmarshal(doc, &prov) != nil || prov.SHA256 == "" {
		return nil, nil // a note of an older format: it decides nothing
	}
	return &prov, nil
}

// provenanceOf returns the provenance of the object at bucket/key whose
// bytes have SHA-256 sum when dedupfn wrote it (the index decides, never
// the object's metadata), else nil: an upload, or an object that has
// replaced dedupfn's output there since.
func (p *Pipeline) provenanceOf(ctx context.Context, bucket, key, sum string) (*provenance, error) {
	if sum == "" {
		return nil, nil
	}
	prov, err := p.provenanceAt(ctx, bucket, key)
	if err != nil || prov == nil || prov.SHA256 != sum {
		return nil, err
	}
	return prov, nil
}

// docsPrefix calls fn for each document of kind whose id starts with
// prefix, decoded into a fresh T.
func docsPrefix[T any](ctx context.Context, idx index.Docs, kind, prefix string, fn func(id string, doc T) error) error {
	return idx.DocsPrefix(ctx, kind, prefix, func(id string, raw []byte) error {
		var doc T
		if json.Unmarshal(raw, &doc) != nil {
			return nil // not of this format: decides nothing
		}
		return fn(id, doc)
	})
}

// derivedOf returns the outputs noted as made from the object at
// bucket/key, with their document ids.
func (p *Pipeline) derivedOf(ctx context.Context, bucket, key string) (ids []string, docs []derivedDoc, err error) {
	ctx, cancel := p.callCtx(ctx)
	defer cancel()
	err = docsPrefix(ctx, p.cfg.Index, derivedDocKind, outputDocID(bucket, key)+".", func(id string, d derivedDoc) error {
		ids, docs = append(ids, id), append(docs, d)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("pipeline: look up outputs of %s/%s: %w", bucket, key, err)
	}
	return ids, docs, nil
}
