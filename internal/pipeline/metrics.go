package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dedupfn/dedupfn/internal/activation"
)

// metrics are this replica's counters; cluster-wide totals come from the
// index (see api's stats collector).
type metrics struct {
	activations   *prometheus.CounterVec
	functionSecs  prometheus.Counter
	savedSecs     prometheus.Counter
	deadLetters   prometheus.Counter
	selfSkipped   prometheus.Counter
	outputMissing prometheus.Counter
	reconciled    prometheus.Counter
	renewFailures prometheus.Counter
	leaseLost     prometheus.Counter
	panics        prometheus.Counter
	stage         *prometheus.HistogramVec

	audits          *prometheus.CounterVec // by result: see audit.go
	auditMismatches *prometheus.CounterVec // by tenant, function
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dedupfn_pipeline_activations_total", Help: "Activations recorded by this replica, by decision.",
		}, []string{"decision"}),
		functionSecs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dedupfn_pipeline_function_seconds_total", Help: "Function run time spent by this replica.",
		}),
		savedSecs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dedupfn_pipeline_saved_seconds_total", Help: "Function run time saved by hits and waits on this replica.",
		}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dedupfn_pipeline_dead_letters_total", Help: "Events that failed their last attempt.",
		}),
		selfSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dedupfn_pipeline_self_trigger_skipped_total", Help: "Events for objects dedupfn wrote itself, ignored.",
		}),
		outputMissing: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dedupfn_pipeline_output_missing_total", Help: "Hits whose recorded output was gone or changed, run again.",
		}),
		reconciled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dedupfn_reconcile_missed_events_total", Help: "Objects the reconciler found without an activation: events the source missed.",
		}),
		renewFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dedupfn_pipeline_lease_renew_failures_total", Help: "Lease renewals that failed with an index error (not a takeover).",
		}),
		leaseLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dedupfn_pipeline_leases_lost_total", Help: "Runs abandoned because their claim could no longer be proven held.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dedupfn_pipeline_panics_total", Help: "Panics recovered while processing an event, recorded as platform errors.",
		}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dedupfn_pipeline_stage_seconds", Help: "Time per pipeline stage.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"stage"}),
		audits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dedupfn_audits_total",
			Help: "Determinism audits of hits on this replica, by result: match, mismatch, error (the function failed), skipped (input or recorded output gone), dropped (sampled while audits were busy).",
		}, []string{"result"}),
		auditMismatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dedupfn_audit_mismatches_total", Help: "Audits on this replica whose output differed from the recorded one, by function.",
		}, []string{"tenant", "function"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.activations, m.functionSecs, m.savedSecs, m.deadLetters, m.selfSkipped, m.outputMissing, m.reconciled, m.renewFailures, m.leaseLost, m.panics, m.stage, m.audits, m.auditMismatches} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(r activation.Record) {
	m.activations.WithLabelValues(string(r.Decision)).Inc()
	if r.Decision == activation.Miss {
		m.functionSecs.Add(r.FunctionMS / 1000)
	}
	m.savedSecs.Add(r.SavedMS / 1000)
	if r.DeadLetter {
		m.deadLetters.Inc()
	}
	for stage, v := range map[string]float64{
		"fetch_hash": r.Timings.FetchMS, "lookup": r.Timings.LookupMS, "invoke": r.Timings.InvokeMS,
		"store": r.Timings.StoreMS, "total": r.Timings.TotalMS,
	} {
		if v > 0 {
			m.stage.WithLabelValues(stage).Observe(v / 1000)
		}
	}
}
