package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dedupfn/dedupfn/internal/testutil"
)

// Credentials of the superuser of the cluster StartPostgres runs.
const (
	PostgresUser     = "postgres"
	PostgresPassword = "dedupfn-test-password"
)

// Postgres is a private PostgreSQL cluster: its data directory, socket and
// log in a temporary directory, listening on a free loopback port.
type Postgres struct {
	// Addr is host:port.
	Addr string

	bin, dir string
	cred     *syscall.Credential // who runs initdb and postgres (nil: this process's user)
	p        *proc
}

// StartPostgres initializes a new PostgreSQL cluster (initdb from the
// Debian package scripts/peers/postgres.sh installs, the directory in
// $DEDUPFN_POSTGRES_BIN, or initdb on PATH), starts it on a free port and
// waits until it accepts connections. initdb and postgres refuse to run as
// root, so as root they run as the postgres system user the Debian package
// creates. Skipped locally when PostgreSQL is missing, fatal under CI.
// Stopped (fast shutdown) and removed when the test ends.
func StartPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	pg := &Postgres{Addr: testutil.FreeAddr(tb), bin: postgresBin(tb)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testutil.Missing(tb, "running as root and no postgres system user to run initdb as (apt-get install postgresql creates it)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not tb.TempDir(): its parents are private to root, and the
	// postgres user must reach its data directory.
	dir, err := os.MkdirTemp("", "dedupfn-postgres-")
	if err != nil {
		tb.Fatal(err)
	}
	pg.dir = dir
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if pg.cred != nil {
		if err := os.Chown(dir, int(pg.cred.Uid), int(pg.cred.Gid)); err != nil {
			tb.Fatal(err)
		}
	}
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(PostgresPassword+"\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	initdb := pg.command(filepath.Join(pg.bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", PostgresUser,
		"--pwfile", pwfile, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-locale", "-E", "UTF8", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	_, port, _ := strings.Cut(pg.Addr, ":")
	cmd := pg.command(filepath.Join(pg.bin, "postgres"), "-D", filepath.Join(dir, "data"),
		"-p", port, "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	pg.p = start(tb, "postgres", cmd, filepath.Join(dir, "postgres.log"))
	tb.Cleanup(pg.Stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, pg.URL("postgres"))
		if err == nil {
			conn.Close(ctx)
			cancel()
			return pg
		}
		cancel()
		if time.Now().After(deadline) || !pg.p.running() {
			tb.Fatalf("postgres did not start on %s: %v\n%s", pg.Addr, err, pg.p.logTail(4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// postgresBin finds the directory of initdb and postgres.
func postgresBin(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("DEDUPFN_POSTGRES_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			testutil.Missing(tb, "DEDUPFN_POSTGRES_BIN="+d+" has no initdb")
		}
		return d
	}
	// Debian: /usr/lib/postgresql/<major>/bin; take the newest major.
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(found, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		return vb - va
	})
	if len(found) > 0 {
		return filepath.Dir(found[0])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	testutil.Missing(tb, "PostgreSQL (initdb) not in /usr/lib/postgresql/*/bin, $DEDUPFN_POSTGRES_BIN or PATH (scripts/peers/postgres.sh installs it)")
	return ""
}

// command runs name as the cluster's user.
func (pg *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = pg.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	return cmd
}

// Stop shuts the server down (fast: clients are disconnected) and waits
// for it. Safe to call twice.
func (pg *Postgres) Stop() {
	if pg.p == nil || !pg.p.running() {
		return
	}
	_ = pg.p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-pg.p.exited:
	case <-time.After(stopGrace):
		pg.p.stop(true)
	}
}

// URL is the postgres: index URL of database db, with the superuser's
// credentials.
func (pg *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", PostgresUser, PostgresPassword, pg.Addr, db)
}

// CreateDB creates database db and returns its URL.
func (pg *Postgres) CreateDB(tb testing.TB, db string) string {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), pg.URL("postgres"))
	if err != nil {
		tb.Fatalf("postgres: connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(tb.Context(), "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		tb.Fatalf("postgres: create database %s: %v", db, err)
	}
	return pg.URL(db)
}

// Log returns the server's output so far.
func (pg *Postgres) Log() string { return pg.p.logTail(1 << 20) }
