package couchdb

import (
	"cmp"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		name, raw, user, pass string
		dsn, db, err          string
		timeout               time.Duration
	}{
		{name: "Plain", raw: "couchdb://127.0.0.1:5984/dedupfn", dsn: "http://127.0.0.1:5984/", db: "dedupfn"},
		{name: "Credentials", raw: "couchdb://admin:s3cr%40t@db.local:5984/idx/", dsn: "http://admin:s3cr%40t@db.local:5984/", db: "idx"},
		{name: "EnvCredentials", raw: "couchdb://db.local:5984/idx", user: "u", pass: "p w", dsn: "http://u:p%20w@db.local:5984/", db: "idx"},
		{name: "URLBeatsEnv", raw: "couchdb://a:b@db.local:5984/idx", user: "u", pass: "p", dsn: "http://a:b@db.local:5984/", db: "idx"},
		{name: "EnvPasswordOnly", raw: "couchdb://a@db.local:5984/idx", pass: "p", dsn: "http://a:p@db.local:5984/", db: "idx"},
		{name: "TLS", raw: "couchdb://db.local:6984/idx?tls=true", dsn: "https://db.local:6984/", db: "idx"},
		{name: "NoDB", raw: "couchdb://db.local:5984", err: "couchdb://[user:pass@]host:port/dbname"},
		{name: "NoHost", raw: "couchdb:///idx", err: "couchdb://[user:pass@]host:port/dbname"},
		{name: "BadName", raw: "couchdb://db.local:5984/Idx", err: `database name must match`},
		{name: "BadTLS", raw: "couchdb://db.local:5984/idx?tls=yes", err: `tls must be true or false, got "yes"`},
		{name: "UnknownParam", raw: "couchdb://db.local:5984/idx?retries=3", err: `unknown url parameter "retries" (known: tls, timeout)`},
		{name: "Timeout", raw: "couchdb://db.local:5984/idx?timeout=250ms", dsn: "http://db.local:5984/", db: "idx", timeout: 250 * time.Millisecond},
		{name: "BadTimeout", raw: "couchdb://db.local:5984/idx?timeout=3", err: `timeout must be a duration > 0 such as 30s, got "3"`},
		{name: "ZeroTimeout", raw: "couchdb://db.local:5984/idx?timeout=0s", err: `timeout must be a duration > 0`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DEDUPFN_COUCHDB_USER", tc.user)
			t.Setenv("DEDUPFN_COUCHDB_PASSWORD", tc.pass)
			u, err := url.Parse(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := parseURL(u)
			dsn, db := cfg.dsn, cfg.name
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseURL(%s) error %v, want it to contain %q", tc.raw, err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cr") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil || dsn != tc.dsn || db != tc.db {
				t.Fatalf("parseURL(%s) = %q, %q, %v; want %q, %q", tc.raw, dsn, db, err, tc.dsn, tc.db)
			}
			if want := cmp.Or(tc.timeout, DefaultTimeout); cfg.timeout != want {
				t.Fatalf("parseURL(%s) timeout = %s, want %s", tc.raw, cfg.timeout, want)
			}
		})
	}
}
