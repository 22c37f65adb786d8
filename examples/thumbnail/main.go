// Command thumbnail is a dedupfn function: it reads a JPEG or PNG image on
// stdin and writes a JPEG thumbnail on stdout whose longer side is the
// param "size" (default 128). It never upscales. Build it for dedupfn with
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -o thumbnail.wasm ./examples/thumbnail
//
// Exit codes: 0 done, 1 the input is not a usable image (or output
// failed), 2 the params are invalid.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	_ "image/png" // register PNG with image.Decode
	"io"
	"os"
	"strconv"

	"golang.org/x/image/draw"
)

// Defaults and bounds.
const (
	// DefaultSize is the longer side of the thumbnail without a size param.
	DefaultSize = 128
	// MaxSize bounds the size param.
	MaxSize = 4096
	// DefaultQuality is the JPEG quality without a quality param.
	DefaultQuality = 85
	// MaxPixels bounds the input image (width × height), so a small file
	// that declares a huge image fails clearly instead of running out of
	// memory.
	MaxPixels = 100_000_000
)

// Exit codes.
const (
	exitOK        = 0
	exitBadInput  = 1
	exitBadParams = 2
)

// Options are the function's params, parsed.
type Options struct {
	Size    int // longer side of the thumbnail, in pixels
	Quality int // JPEG quality, 1..100
}

// errNotImage marks input that is not a JPEG or PNG image.
var errNotImage = errors.New("input is not a JPEG or PNG image")

func main() {
	os.Exit(run(os.Stdin, os.Stdout, os.Stderr, os.Getenv("DEDUPFN_PARAMS")))
}

// run is the whole command: it maps failures to messages on stderr and
// exit codes.
func run(stdin io.Reader, stdout, stderr io.Writer, params string) int {
	opts, err := ParseParams(params)
	if err != nil {
		fmt.Fprintf(stderr, "thumbnail: %v\n", err)
		return exitBadParams
	}
	out := bufio.NewWriter(stdout)
	if err := Thumbnail(stdin, out, opts); err != nil {
		fmt.Fprintf(stderr, "thumbnail: %v\n", err)
		return exitBadInput
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "thumbnail: write output: %v\n", err)
		return exitBadInput
	}
	return exitOK
}

// ParseParams parses DEDUPFN_PARAMS (a JSON object of strings; empty means
// none) into Options, applying defaults.
func ParseParams(js string) (Options, error) {
	opts := Options{Size: DefaultSize, Quality: DefaultQuality}
	if js == "" {
		return opts, nil
	}
	var params map[string]string
	if err := json.Unmarshal([]byte(js), &params); err != nil {
		return opts, fmt.Errorf("decode params %q: %w", js, err)
	}
	if s, ok := params["size"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxSize {
			return opts, fmt.Errorf("param size must be an integer from 1 to %d, got %q", MaxSize, s)
		}
		opts.Size = n
	}
	if s, ok := params["quality"]; ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return opts, fmt.Errorf("param quality must be an integer from 1 to 100, got %q", s)
		}
		opts.Quality = n
	}
	return opts, nil
}

// Fit returns the size of a w×h image scaled so its longer side is size,
// keeping the aspect ratio (each side at least 1). An image that already
// fits is not enlarged.
func Fit(w, h, size int) (int, int) {
	if w <= size && h <= size {
		return w, h
	}
	if w >= h {
		return size, max(1, (h*size+w/2)/w)
	}
	return max(1, (w*size+h/2)/h), size
}

// Thumbnail decodes a JPEG or PNG image from r and writes its thumbnail as
// a JPEG to w. Transparent areas become white, as JPEG has no alpha.
func Thumbnail(r io.Reader, w io.Writer, opts Options) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %w", errNotImage, err)
	}
	if format != "jpeg" && format != "png" {
		return fmt.Errorf("%w: format %s", errNotImage, format)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > MaxPixels || px == 0 {
		return fmt.Errorf("image is %dx%d: want 1 to %d pixels", cfg.Width, cfg.Height, MaxPixels)
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %w", errNotImage, err)
	}
	b := src.Bounds()
	tw, th := Fit(b.Dx(), b.Dy(), opts.Size)
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Over, nil)
	if err := jpeg.Encode(w, dst, &jpeg.Options{Quality: opts.Quality}); err != nil {
		return fmt.Errorf("encode jpeg: %w", err)
	}
	return nil
}
