package groupcommit

// Waiting reports how many callers are queued behind the running commit.
func Waiting[T any](g *Group[T]) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}
