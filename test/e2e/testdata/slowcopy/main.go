// slowcopy is a test function: it sleeps for param "ms" milliseconds, then
// copies stdin to stdout. It lets tests crash a replica mid-run.
package main

import (
	"encoding/json"
	"io"
	"os"
	"strconv"
	"time"
)

func main() {
	var params map[string]string
	json.Unmarshal([]byte(os.Getenv("DEDUPFN_PARAMS")), &params)
	ms, _ := strconv.Atoi(params["ms"])
	time.Sleep(time.Duration(ms) * time.Millisecond)
	io.Copy(os.Stdout, os.Stdin)
}
