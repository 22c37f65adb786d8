// Command fetchaction is the attack suite's process action (OpenWhisk
// actionloop protocol). Per activation it appends "start" with its input
// URLs to the side file named by param "log", sleeps param "ms"
// milliseconds, then reads its input (inline "body", else a GET of
// "get_url"), appends "end SHA256", and returns the input as its output
// object. The side file counts executions and keeps the URLs, so the suite
// can try them again after the activation ended.
package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/dedupfn/dedupfn/internal/testutil/actionloop"
)

func main() { actionloop.Serve(run) }

func run(v map[string]any, res map[string]any) error {
	logPath, _ := v["log"].(string)
	getURL, _ := v["get_url"].(string)
	putURL, _ := v["put_url"].(string)
	note := func(format string, args ...any) error {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintf(f, format+"\n", args...)
		return err
	}
	if err := note("start %s %s", quoteEmpty(getURL), quoteEmpty(putURL)); err != nil {
		return err
	}
	ms, _ := v["ms"].(string)
	delay, _ := strconv.Atoi(ms)
	time.Sleep(time.Duration(delay) * time.Millisecond)

	var data []byte
	if body, ok := v["body"].(string); ok {
		var err error
		if data, err = base64.StdEncoding.DecodeString(body); err != nil {
			return err
		}
	} else {
		resp, err := http.Get(getURL)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("get_url: HTTP %d", resp.StatusCode)
		}
		if data, err = io.ReadAll(resp.Body); err != nil {
			return err
		}
	}
	sum := sha256.Sum256(data)
	if err := note("end %s", hex.EncodeToString(sum[:])); err != nil {
		return err
	}
	res["body"] = base64.StdEncoding.EncodeToString(data)
	return nil
}

func quoteEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
