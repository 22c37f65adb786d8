package registry

// TEMPORARY stub of graph.go (s6/graph): replaced at merge.

const MaxChainStages = 16

type Graph struct{}

func (r *Registry) Graph() *Graph { return &Graph{} }

func (g *Graph) Ancestors(f Function) []Function { return nil }

const (
	OnInputDeleteKeep   = "keep"
	OnInputDeleteDelete = "delete"
)
