package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/backfill"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// Client calls the API; the CLI's client commands use it.
type Client struct {
	BaseURL string
	Token   string
	Tenant  string
	HTTP    *http.Client
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.Tenant != "" {
		req.Header.Set(TenantHeader, c.Tenant)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the dedupfn API at %s (is `dedupfn serve` running? set --api or DEDUPFN_API): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Deploy deploys a function.
func (c *Client) Deploy(ctx context.Context, req DeployRequest) (DeployResponse, error) {
	var out DeployResponse
	return out, c.do(ctx, http.MethodPost, "/v1/functions", req, &out)
}

// Functions lists functions.
func (c *Client) Functions(ctx context.Context) ([]registry.Function, error) {
	var out []registry.Function
	return out, c.do(ctx, http.MethodGet, "/v1/functions", nil, &out)
}

// Function gets one function.
func (c *Client) Function(ctx context.Context, name string) (registry.Function, error) {
	var out registry.Function
	return out, c.do(ctx, http.MethodGet, "/v1/functions/"+url.PathEscape(name), nil, &out)
}

// FunctionInfos lists functions with their upstream and downstream
// functions.
func (c *Client) FunctionInfos(ctx context.Context) ([]FunctionInfo, error) {
	var out []FunctionInfo
	return out, c.do(ctx, http.MethodGet, "/v1/functions", nil, &out)
}

// FunctionInfo gets one function with its upstream and downstream
// functions.
func (c *Client) FunctionInfo(ctx context.Context, name string) (FunctionInfo, error) {
	var out FunctionInfo
	return out, c.do(ctx, http.MethodGet, "/v1/functions/"+url.PathEscape(name), nil, &out)
}

// Graph returns the function graph the caller may see (GET /v1/graph).
func (c *Client) Graph(ctx context.Context) (FunctionGraph, error) {
	var out FunctionGraph
	return out, c.do(ctx, http.MethodGet, "/v1/graph", nil, &out)
}

// DeleteFunction deletes a function.
func (c *Client) DeleteFunction(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/functions/"+url.PathEscape(name), nil, nil)
}

// Invoke runs a function on one object.
func (c *Client) Invoke(ctx context.Context, req pipeline.InvokeRequest) (activation.Record, error) {
	var out activation.Record
	return out, c.do(ctx, http.MethodPost, "/v1/invoke", req, &out)
}

// Activations lists activation records, newest first.
func (c *Client) Activations(ctx context.Context, fn string, limit int) ([]activation.Record, error) {
	return c.ListActivations(ctx, ActivationQuery{Function: fn, Limit: limit})
}

// ActivationQuery selects activation records; zero fields match all.
type ActivationQuery struct {
	Function string
	Since    time.Time // started at or after
	Limit    int       // 0: the server's default
	// Decision and ErrorsOnly (decision error or dead-lettered) filter
	// listings, among the server's DefaultActivationScan newest
	// (ListActivations only).
	Decision   activation.Decision
	ErrorsOnly bool
}

func (q ActivationQuery) values() url.Values {
	v := url.Values{}
	if q.Function != "" {
		v.Set("fn", q.Function)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Decision != "" {
		v.Set("decision", string(q.Decision))
	}
	if q.ErrorsOnly {
		v.Set("errors", "1")
	}
	return v
}

// ListActivations lists the activation records q selects, newest first.
func (c *Client) ListActivations(ctx context.Context, q ActivationQuery) ([]activation.Record, error) {
	var out []activation.Record
	return out, c.do(ctx, http.MethodGet, "/v1/activations?"+q.values().Encode(), nil, &out)
}

// DeadLetters lists the dead letters q selects that were not retried yet,
// newest first (see GET /v1/dlq).
func (c *Client) DeadLetters(ctx context.Context, q ActivationQuery) ([]activation.Record, error) {
	var out []activation.Record
	return out, c.do(ctx, http.MethodGet, "/v1/dlq?"+q.values().Encode(), nil, &out)
}

// Retry runs a dead letter's event again and returns the new activation.
func (c *Client) Retry(ctx context.Context, id string) (activation.Record, error) {
	var out activation.Record
	return out, c.do(ctx, http.MethodPost, "/v1/dlq/"+url.PathEscape(id)+"/retry", struct{}{}, &out)
}

// Activation gets one activation record.
func (c *Client) Activation(ctx context.Context, id string) (activation.Record, error) {
	var out activation.Record
	return out, c.do(ctx, http.MethodGet, "/v1/activations/"+url.PathEscape(id), nil, &out)
}

// Stats returns totals.
func (c *Client) Stats(ctx context.Context) (activation.Stats, error) {
	var out activation.Stats
	return out, c.do(ctx, http.MethodGet, "/v1/stats", nil, &out)
}

// Purge deletes dedup records of a function.
func (c *Client) Purge(ctx context.Context, req PurgeRequest) (int, error) {
	var out map[string]int
	err := c.do(ctx, http.MethodPost, "/v1/purge", req, &out)
	return out["purged"], err
}

// Explain shows an object's dedup key and what would happen.
func (c *Client) Explain(ctx context.Context, fn, bucket, key string) (pipeline.Explanation, error) {
	q := url.Values{"fn": {fn}, "bucket": {bucket}, "key": {key}}
	var out pipeline.Explanation
	return out, c.do(ctx, http.MethodGet, "/v1/explain?"+q.Encode(), nil, &out)
}

// Lineage returns an object's chain back to its upload and the objects
// derived from it.
func (c *Client) Lineage(ctx context.Context, bucket, key string) (pipeline.Lineage, error) {
	q := url.Values{"bucket": {bucket}, "key": {key}}
	var out pipeline.Lineage
	return out, c.do(ctx, http.MethodGet, "/v1/lineage?"+q.Encode(), nil, &out)
}

// StartBackfill starts a backfill job on the server and returns it.
func (c *Client) StartBackfill(ctx context.Context, req backfill.Request) (backfill.Job, error) {
	var out backfill.Job
	return out, c.do(ctx, http.MethodPost, "/v1/backfills", req, &out)
}

// Backfills lists backfill jobs, newest first.
func (c *Client) Backfills(ctx context.Context) ([]backfill.Job, error) {
	var out []backfill.Job
	return out, c.do(ctx, http.MethodGet, "/v1/backfills", nil, &out)
}

// Backfill gets one backfill job.
func (c *Client) Backfill(ctx context.Context, id string) (backfill.Job, error) {
	var out backfill.Job
	return out, c.do(ctx, http.MethodGet, "/v1/backfills/"+url.PathEscape(id), nil, &out)
}

// CancelBackfill asks a backfill job to stop and returns it (canceled, or
// still finishing its objects in flight).
func (c *Client) CancelBackfill(ctx context.Context, id string) (backfill.Job, error) {
	var out backfill.Job
	return out, c.do(ctx, http.MethodPost, "/v1/backfills/"+url.PathEscape(id)+"/cancel", struct{}{}, &out)
}

// FunctionStats returns the totals of each function the caller may see
// (GET /v1/stats/functions).
func (c *Client) FunctionStats(ctx context.Context) ([]FunctionTotals, error) {
	var out []FunctionTotals
	return out, c.do(ctx, http.MethodGet, "/v1/stats/functions", nil, &out)
}

// Series returns the runs, hits and errors of the last minutes minutes
// (0: the server's default), of function fn ("" = all), by minute
// (GET /v1/series).
func (c *Client) Series(ctx context.Context, minutes int, fn string) (Series, error) {
	v := url.Values{}
	if minutes != 0 {
		v.Set("minutes", strconv.Itoa(minutes))
	}
	if fn != "" {
		v.Set("fn", fn)
	}
	var out Series
	return out, c.do(ctx, http.MethodGet, "/v1/series?"+v.Encode(), nil, &out)
}
