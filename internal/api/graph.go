package api

import (
	"cmp"
	"net/http"
	"slices"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/registry"
)

// routeGraph mounts GET /v1/graph: the function graph for the dashboard.
func (s *Server) routeGraph() {
	s.handle("GET /v1/graph", s.graph)
}

// The kinds of a GraphNode.
const (
	NodeBucket   = "bucket"
	NodeFunction = "function"
)

// GraphNode is a bucket or a function of GET /v1/graph.
type GraphNode struct {
	// ID is "bucket:NAME" or "function:TENANT/NAME": what edges name.
	ID   string `json:"id"`
	Kind string `json:"kind"` // NodeBucket or NodeFunction
	Name string `json:"name"`
	// Tenant is a function's tenant (none for a bucket).
	Tenant string `json:"tenant,omitempty"`
}

// GraphEdge is a trigger (bucket → function) or an output (function →
// bucket) of GET /v1/graph, with the function's totals.
type GraphEdge struct {
	From    string  `json:"from"`
	To      string  `json:"to"`
	Events  int64   `json:"events"`
	Runs    int64   `json:"runs"`
	Hits    int64   `json:"hits"`
	HitRate float64 `json:"hit_rate"` // Hits / (Hits + Runs), 0 when both are 0
}

// FunctionGraph is the body of GET /v1/graph: buckets first, then
// functions, each sorted; each function's trigger edge, then its output
// edge.
type FunctionGraph struct {
	Nodes []GraphNode `json:"nodes"`
	Edges []GraphEdge `json:"edges"`
}

// graph answers the caller's functions (the admin's: every tenant's, or
// the one named by TenantHeader) and their buckets, with the per-function
// totals of GET /v1/stats/functions.
func (s *Server) graph(w http.ResponseWriter, r *http.Request, c caller) error {
	fs, err := s.cfg.Index.FunctionStats(r.Context(), c.tenant)
	if err != nil {
		return err
	}
	totals := make(map[string]activation.Stats, len(fs))
	for _, f := range fs {
		totals[f.Tenant+"/"+f.Function] = f.Stats
	}
	fns := s.cfg.Registry.List(c.tenant)
	slices.SortFunc(fns, func(a, b registry.Function) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Name, b.Name))
	})
	out := FunctionGraph{Nodes: []GraphNode{}, Edges: []GraphEdge{}}
	var buckets []string
	for _, f := range fns {
		buckets = append(buckets, f.Trigger.Bucket, f.Output.Bucket)
	}
	slices.Sort(buckets)
	for _, b := range slices.Compact(buckets) {
		out.Nodes = append(out.Nodes, GraphNode{ID: NodeBucket + ":" + b, Kind: NodeBucket, Name: b})
	}
	for _, f := range fns {
		id := NodeFunction + ":" + f.Tenant + "/" + f.Name
		out.Nodes = append(out.Nodes, GraphNode{ID: id, Kind: NodeFunction, Name: f.Name, Tenant: f.Tenant})
		st := totals[f.Tenant+"/"+f.Name]
		edge := GraphEdge{Events: st.Events, Runs: st.Runs, Hits: st.Hits, HitRate: st.HitRate()}
		edge.From, edge.To = NodeBucket+":"+f.Trigger.Bucket, id
		out.Edges = append(out.Edges, edge)
		edge.From, edge.To = id, NodeBucket+":"+f.Output.Bucket
		out.Edges = append(out.Edges, edge)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
