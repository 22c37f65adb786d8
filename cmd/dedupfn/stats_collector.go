package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dedupfn/dedupfn/internal/index"
)

// statsCollector exports the index's totals, which replicas sharing an
// index share: cluster-wide numbers from any replica.
type statsCollector struct {
	idx                                                   index.Activations
	events, runs, hits, waits, errors, deadLetters, saved *prometheus.Desc
}

func newStatsCollector(idx index.Activations) *statsCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("dedupfn_cluster_"+name, help, nil, nil)
	}
	return &statsCollector{
		idx:         idx,
		events:      d("events_total", "Activations recorded by all replicas sharing the index."),
		runs:        d("runs_total", "Function runs (misses)."),
		hits:        d("hits_total", "Events served from a recorded result."),
		waits:       d("waits_total", "Events that waited for a concurrent run of the same content."),
		errors:      d("errors_total", "Events that ended in an error."),
		deadLetters: d("dead_letters_total", "Events dead-lettered after their last attempt."),
		saved:       d("saved_seconds_total", "Function time saved by hits and waits."),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.events, c.runs, c.hits, c.waits, c.errors, c.deadLetters, c.saved} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.idx.Stats(ctx, "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.events, err)
		return
	}
	for d, v := range map[*prometheus.Desc]float64{
		c.events: float64(st.Events), c.runs: float64(st.Runs), c.hits: float64(st.Hits), c.waits: float64(st.Waits),
		c.errors: float64(st.Errors), c.deadLetters: float64(st.DeadLetters), c.saved: st.SavedMS / 1000,
	} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
}
