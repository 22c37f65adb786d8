package main

import (
	"fmt"
	"io"
	"log/slog"
)

// newLogger returns serve's logger, writing to w in format: "json" (one
// object a line, for log collectors), "text" (for people), or "" for
// text when w is a terminal and JSON otherwise.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be json or text, got %q", format)
}
