package owapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
)

// maxSequenceActions bounds the invocations one sequence makes, those
// of the sequences it holds included (OpenWhisk's 50 actions): sequences
// of sequences that name each other would otherwise run without end, or
// exponentially many actions.
const maxSequenceActions = 50

// checkSequence checks a sequence's components when it is created: each
// one exists and the caller may invoke it, and none is the sequence.
func (s *Server) checkSequence(ctx context.Context, caller *Namespace, pkg string, doc *actionDoc) error {
	if len(doc.Exec.Components) == 0 {
		return badRequest(msgSeqNoComp)
	}
	if len(doc.Exec.Components) > maxSequenceActions {
		return badRequest("Too many actions in the sequence.")
	}
	self := fqn{ns: caller.Name, pkg: pkg, name: doc.Name}
	for i, c := range doc.Exec.Components {
		f, err := parseFQN(c, caller.Name)
		if err != nil {
			return err
		}
		if f == self {
			return badRequest(msgSeqCyclic)
		}
		if _, err := s.resolveAction(ctx, caller, f); err != nil {
			if statusOf(err) == http.StatusNotFound || statusOf(err) == http.StatusForbidden {
				return badRequest("%s: %s", msgSeqNotFound, c)
			}
			return err
		}
		doc.Exec.Components[i] = f.String()
	}
	doc.Exec.Code, doc.Exec.Binary, doc.Function, doc.CodeDigest, doc.DedupVersion = "", false, "", "", ""
	return nil
}

// runSequence invokes a sequence's components in order, each with the
// previous one's result (the first with the sequence's parameters), each
// deduplicated on its own input and caused by the sequence's activation
// id. It stops at the first result with an "error" field, as OpenWhisk
// does. The sequence's record (recorded here: no function runs for it)
// lists the components' activation ids as its logs and has the last
// result.
func (s *Server) runSequence(ctx context.Context, caller *Namespace, a *resolved, params json.RawMessage, id, cause string, budget *int) (activation.Record, error) {
	start := time.Now()
	rec := activation.Record{ID: id, EventID: id, Tenant: caller.tenant(), Function: a.doc.Function, Start: start.UTC(),
		EventSource: sourceSequence, EventTime: start.UTC(), Decision: activation.Skipped, Attempts: 1}
	rec.Function, _ = functionName(a.pkg, a.doc.Name)
	if a.builtin != "" || a.ns == SystemNamespace {
		rec.Function = ""
	}
	rec.Cause = cause
	input := params
	var logs []byte
	for _, c := range a.doc.Exec.Components {
		f, err := parseFQN(c, caller.Name)
		if err != nil {
			return rec, err
		}
		if *budget--; *budget < 0 {
			rec.Decision, rec.Error, rec.ErrorClass = activation.Error, msgSeqFailure+" Too many actions in the sequence.", "function"
			break
		}
		comp, err := s.resolveAction(ctx, caller, f)
		if err != nil {
			rec.Decision, rec.Error, rec.ErrorClass = activation.Error, fmt.Sprintf("%s: %s", msgSeqNotFound, c), "config"
			break
		}
		var payload map[string]json.RawMessage
		if err := json.Unmarshal(input, &payload); err != nil {
			payload = map[string]json.RawMessage{}
		}
		merged, err := mergeParams(comp.pkgParams, comp.doc.Parameters, payload)
		if err != nil {
			return rec, err
		}
		cid := newID()
		crec, err := s.run(ctx, caller, comp, merged, cid, id, budget)
		if err != nil && crec.ID == "" {
			if errors.Is(err, context.Canceled) {
				return rec, err
			}
			rec.Decision, rec.Error, rec.ErrorClass = activation.Error, fmt.Sprintf("%s: %s: %v", msgSeqFailure, c, err), "platform"
			break
		}
		logs = append(logs, crec.ID+"\n"...)
		rec.Result = crec.Result
		rec.SavedMS += crec.SavedMS
		resp := response(crec)
		if !resp.Success {
			rec.Result = resp.Result
			rec.Error, rec.ErrorClass = crec.Error, crec.ErrorClass
			if rec.Error == "" {
				rec.Error, rec.ErrorClass = msgSeqFailure, "function"
			}
			break
		}
		input = crec.Result
	}
	rec.Logs = string(logs)
	rec.Timings.TotalMS = float64(time.Since(start).Microseconds()) / 1000
	if err := s.cfg.Index.AddActivation(context.WithoutCancel(ctx), rec); err != nil {
		return rec, fmt.Errorf("owapi: record sequence activation %s: %w", id, err)
	}
	return rec, nil
}
