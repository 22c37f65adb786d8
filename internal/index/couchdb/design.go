package couchdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	kivik "github.com/go-kivik/kivik/v4"
)

// designVersion is the version of views: ensureDesign replaces a design
// document of a lower version, or of this version with other content, and
// leaves a higher one (a newer replica's, in a rolling upgrade) alone.
// Bump it with every change to views. 2: the fnstats view. 3: deletes
// in the stats views.
const designVersion = 3

// statsReduce folds the values emitted by the stats and fnstats views:
// the same fields as activation.Stats.Add.
const statsReduce = `function (keys, values, rereduce) {
  var s = {events: 0, runs: 0, hits: 0, waits: 0, errors: 0, skipped: 0, deletes: 0, dead_letters: 0, function_ms: 0, saved_ms: 0};
  for (var i = 0; i < values.length; i++) for (var k in s) s[k] += values[i][k] || 0;
  return s;
}`

// statsValue is the JavaScript expression of one activation's totals
// (activation.Stats.Add of doc alone), emitted by the stats views.
const statsValue = `{
    events: 1, runs: d === "miss" ? 1 : 0, hits: (d === "hit" || d === "wait") ? 1 : 0, waits: d === "wait" ? 1 : 0,
    errors: d === "error" ? 1 : 0, skipped: d === "skipped" ? 1 : 0,
    deletes: d === "delete" ? 1 : 0, dead_letters: doc.dead_letter ? 1 : 0,
    function_ms: d === "miss" ? (doc.function_ms || 0) : 0, saved_ms: doc.saved_ms || 0
  }`

// views index activation documents for listing and stats. stats is keyed
// by tenant, fnstats by [tenant, function]; both add the tally documents
// of pruned activations to the activations kept (fnstats only the tallies
// written since it exists). seen is no longer queried (ObjectSeen is
// gone): it stays because replicas of older versions sharing the
// database in a rolling upgrade still ask it, and dropping it would be a
// change of designVersion.
var views = map[string]any{
	"language": "javascript",
	"dedupfn":  map[string]int{"version": designVersion},
	"views": map[string]any{
		"acts": map[string]string{"map": `function (doc) {
  if (doc.type !== "activation") return;
  var at = doc.sort || doc.start;
  emit(["*", "*", at], null);
  emit(["t:" + doc.tenant, "*", at], null);
  emit(["*", "f:" + doc.function, at], null);
  emit(["t:" + doc.tenant, "f:" + doc.function, at], null);
}`},
		"seen": map[string]string{"map": `function (doc) {
  if (doc.type === "activation" && doc.event && doc.event.bucket) emit([doc.event.bucket, doc.event.key, doc.event.etag || ""], null);
}`},
		"stats": map[string]string{
			"map": `function (doc) {
  if (doc.type === "tally") {
    for (var t in doc.stats) emit(t, doc.stats[t]);
    return;
  }
  if (doc.type !== "activation") return;
  var d = doc.decision;
  emit(doc.tenant, ` + statsValue + `);
}`,
			"reduce": statsReduce,
		},
		"fnstats": map[string]string{
			"map": `function (doc) {
  if (doc.type === "tally") {
    for (var t in doc.functions) for (var f in doc.functions[t]) emit([t, f], doc.functions[t][f]);
    return;
  }
  if (doc.type !== "activation") return;
  var d = doc.decision;
  emit([doc.tenant, doc.function], ` + statsValue + `);
}`,
			"reduce": statsReduce,
		},
	},
	// docs passes the changes of one kind of document to WatchDocs.
	"filters": map[string]string{
		"docs": `function (doc, req) {
  return doc._id.indexOf("` + docPrefix + `" + req.query.kind + ":") === 0;
}`,
	},
}

// ensureDesign writes the design document unless the database has it
// already, or a newer one (see designVersion).
func (d *DB) ensureDesign(ctx context.Context) error {
	doc := map[string]any{}
	for k, v := range views {
		doc[k] = v
	}
	for range maxCASRetries {
		var cur struct {
			Rev     string `json:"_rev"`
			Views   any    `json:"views"`
			Filters any    `json:"filters"`
			Dedupfn struct {
				Version int `json:"version"`
			} `json:"dedupfn"` // absent (0) before version 2
		}
		err := d.db.Get(ctx, designDoc).ScanDoc(&cur)
		switch {
		case kivik.HTTPStatus(err) == http.StatusNotFound:
			delete(doc, "_rev")
		case err != nil:
			return fmt.Errorf("couchdb: read design doc: %w", err)
		case cur.Dedupfn.Version > designVersion:
			d.log.Warn("design document is newer than this version knows", "version", cur.Dedupfn.Version, "known", designVersion)
			return nil
		case cur.Dedupfn.Version == designVersion && equalJSON(cur.Views, views["views"]) && equalJSON(cur.Filters, views["filters"]):
			return nil
		default:
			doc["_rev"] = cur.Rev
		}
		_, err = d.db.Put(ctx, designDoc, doc)
		if kivik.HTTPStatus(err) == http.StatusConflict {
			continue // another replica wrote it first: compare again
		}
		if err != nil {
			return fmt.Errorf("couchdb: write design doc: %w", err)
		}
		return nil
	}
	return errors.New("couchdb: write design doc: too many conflicts")
}

// equalJSON compares two values by their JSON encoding.
func equalJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
