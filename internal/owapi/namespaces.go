package owapi

import "net/http"

// routeNamespaces mounts GET /namespaces: the caller's namespace only.
func (s *Server) routeNamespaces() {
	s.handle("GET /namespaces", false, func(w http.ResponseWriter, q *request) error {
		writeJSON(w, http.StatusOK, []string{q.caller.Name})
		return nil
	})
}
