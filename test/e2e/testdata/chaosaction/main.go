// Command chaosaction is the chaos test's function: an OpenWhisk
// actionloop action for the process runtime. For each activation it
// appends "start SHA PID PPID GPPID" to the side file named by param "log",
// sleeps param "ms" milliseconds, appends "end SHA PID PPID GPPID", and returns
// the input upper-cased (param "repeat" times, default once) as its output
// object. The side file is how the
// test counts executions: a killed execution has a start and no end.
// PPID and GPPID (the parent's parent) name the processes above it: the
// dedupfn replica that ran it is one of them (the process runtime may
// start actions through a shim).
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dedupfn/dedupfn/internal/testutil/actionloop"
)

func main() { actionloop.Serve(run) }

func run(v map[string]any, res map[string]any) error {
	body, _ := v["body"].(string)
	data, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return err
	}
	logPath, _ := v["log"].(string)
	ms, _ := v["ms"].(string)
	delay, _ := strconv.Atoi(ms)
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:8])
	gppid := parentOf(os.Getppid())
	note := func(what string) error {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintf(f, "%s %s %d %d %d\n", what, id, os.Getpid(), os.Getppid(), gppid)
		return err
	}
	if err := note("start"); err != nil {
		return err
	}
	time.Sleep(time.Duration(delay) * time.Millisecond)
	if err := note("end"); err != nil {
		return err
	}
	repeat, _ := v["repeat"].(string)
	times, _ := strconv.Atoi(repeat)
	res["body"] = base64.StdEncoding.EncodeToString(bytes.Repeat(bytes.ToUpper(data), max(times, 1)))
	return nil
}

// parentOf reads a process's parent pid from /proc (0 if unknown).
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields after its ")" are plain.
	_, rest, _ := strings.Cut(string(b), ") ")
	var state string
	var ppid int
	fmt.Sscan(rest, &state, &ppid)
	return ppid
}
