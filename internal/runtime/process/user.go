package process

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// lookupUser resolves an ExecUser (name or numeric uid) for a server
// running as root.
func lookupUser(name string) (uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return 0, 0, fmt.Errorf("process: exec user %s: the server must run as root to switch users, it runs as uid %d", name, os.Geteuid())
	}
	u, err := user.Lookup(name)
	if err != nil {
		var uerr error
		if u, uerr = user.LookupId(name); uerr != nil {
			return 0, 0, fmt.Errorf("process: exec user: %w", err)
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("process: exec user %s: %w", name, err)
	}
	if uid == 0 {
		return 0, 0, fmt.Errorf("process: exec user %s is root: want an unprivileged user", name)
	}
	return uid, gid, nil
}

// reachable checks that uid/gid may search every existing directory from
// / down to dir (which is created 0755 when missing), so that an action
// running as them can reach its code.
func reachable(dir string, uid, gid int) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("process: work dir: %w", err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err == nil {
			perm := uint32(0o001)
			switch {
			case int(st.Uid) == uid:
				perm = 0o100
			case int(st.Gid) == gid:
				perm = 0o010
			}
			if st.Mode&perm == 0 {
				return fmt.Errorf("process: exec user uid %d cannot reach work dir %s: %s is mode %#o (make it searchable, e.g. chmod o+x)",
					uid, abs, d, st.Mode&0o7777)
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}
