package api

// routeBackfills mounts the backfill job endpoints (/v1/backfills).
func (s *Server) routeBackfills() {}
