// Package actionloop is the action's side of the OpenWhisk actionloop
// protocol, for the test actions that the process runtime runs (package
// main programs under testdata/): one place that speaks it, so each action
// holds only what it does.
package actionloop

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

// Sentinel ends each activation's stdout and stderr.
const Sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"

// Serve acks on fd 3 when the runtime asks for it (__OW_WAIT_FOR_ACK),
// then for each activation line on stdin calls run with its value and a
// result to fill, and writes the result on fd 3, with "error" set when the
// line could not be read or run failed, then the sentinel on stdout and
// stderr. It returns when stdin ends.
func Serve(run func(value, result map[string]any) error) {
	out := os.NewFile(3, "results")
	if os.Getenv("__OW_WAIT_FOR_ACK") != "" {
		fmt.Fprintln(out, `{"ok":true}`)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	for in.Scan() {
		var msg struct {
			Value map[string]any `json:"value"`
		}
		res := map[string]any{}
		if err := json.Unmarshal(in.Bytes(), &msg); err != nil {
			res["error"] = err.Error()
		} else if err := run(msg.Value, res); err != nil {
			res["error"] = err.Error()
		}
		b, _ := json.Marshal(res)
		out.Write(append(b, '\n'))
		fmt.Println(Sentinel)
		fmt.Fprintln(os.Stderr, Sentinel)
	}
}
