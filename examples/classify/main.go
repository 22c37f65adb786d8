// Command classify is a dedupfn function for the second stage of a
// pipeline: it reads a JPEG or PNG image (a thumbnail) on stdin and writes
// its labels as JSON on stdout: size, orientation, mean colour and
// whether it is dark or light. It is pure: the same bytes give the same
// labels. Build it for dedupfn with
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -o classify.wasm ./examples/classify
//
// Exit codes: 0 done, 1 the input is not a usable image.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg" // register JPEG with image.Decode
	_ "image/png"  // register PNG with image.Decode
	"io"
	"os"
)

// MaxPixels bounds the input image (width × height), so a small file that
// declares a huge image fails clearly instead of running out of memory.
const MaxPixels = 50_000_000

// Labels are classify's output.
type Labels struct {
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Orientation string `json:"orientation"` // landscape, portrait or square
	Mean        string `json:"mean"`        // mean colour, #rrggbb
	Tone        string `json:"tone"`        // dark or light
}

func main() {
	if err := run(bufio.NewReader(os.Stdin), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "classify:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	l, err := Classify(in)
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(l)
}

// Classify labels the image read from r.
func Classify(r io.Reader) (Labels, error) {
	br := bufio.NewReader(r)
	peek, _ := br.Peek(1 << 16)
	cfg, _, err := image.DecodeConfig(bytes.NewReader(peek))
	if err != nil {
		return Labels{}, fmt.Errorf("not a JPEG or PNG image: %w", err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxPixels {
		return Labels{}, fmt.Errorf("image of %d×%d pixels is over the limit of %d", cfg.Width, cfg.Height, MaxPixels)
	}
	img, _, err := image.Decode(br)
	if err != nil {
		return Labels{}, fmt.Errorf("decode image: %w", err)
	}
	b := img.Bounds()
	var sr, sg, sb, n uint64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			sr, sg, sb, n = sr+uint64(r>>8), sg+uint64(g>>8), sb+uint64(bl>>8), n+1
		}
	}
	l := Labels{Width: b.Dx(), Height: b.Dy(), Orientation: "square", Tone: "light"}
	switch {
	case l.Width > l.Height:
		l.Orientation = "landscape"
	case l.Width < l.Height:
		l.Orientation = "portrait"
	}
	if n > 0 {
		mr, mg, mb := sr/n, sg/n, sb/n
		l.Mean = fmt.Sprintf("#%02x%02x%02x", mr, mg, mb)
		// Rec. 601 luma.
		if (299*mr+587*mg+114*mb)/1000 < 128 {
			l.Tone = "dark"
		}
	}
	return l, nil
}
