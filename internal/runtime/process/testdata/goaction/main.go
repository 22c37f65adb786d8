// Command goaction is a native OpenWhisk action for the process runtime's
// tests: it acks on fd 3, then for each activation line on stdin writes
// the upper-cased input object back as base64 "body" on fd 3, logging one
// line per activation and the end-of-activation sentinel.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
)

const sentinel = "XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX"

func main() {
	out := os.NewFile(3, "results")
	if os.Getenv("__OW_WAIT_FOR_ACK") != "" {
		fmt.Fprintln(out, `{"ok":true}`)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var msg struct {
			Value        map[string]any `json:"value"`
			ActivationID string         `json:"activation_id"`
		}
		res := map[string]any{}
		if err := json.Unmarshal(in.Bytes(), &msg); err != nil {
			res["error"] = err.Error()
		} else {
			body, _ := msg.Value["body"].(string)
			data, err := base64.StdEncoding.DecodeString(body)
			if err != nil {
				res["error"] = err.Error()
			} else {
				res["body"] = base64.StdEncoding.EncodeToString(bytes.ToUpper(data))
				res["pid"] = os.Getpid()
				res["kind"] = "go"
			}
		}
		fmt.Println("goaction: activation", msg.ActivationID)
		b, _ := json.Marshal(res)
		out.Write(append(b, '\n'))
		fmt.Println(sentinel)
		fmt.Fprintln(os.Stderr, sentinel)
	}
}
