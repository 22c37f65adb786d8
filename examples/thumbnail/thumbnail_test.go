package main

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"
	"testing"
)

// testImage returns a w×h gradient with a transparent corner.
func testImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := uint8(255)
			if x < w/8 && y < h/8 {
				a = 0
			}
			img.SetNRGBA(x, y, color.NRGBA{R: uint8(x * 255 / w), G: uint8(y * 255 / h), B: 128, A: a})
		}
	}
	return img
}

// encodePNG and encodeJPEG return img in that format.
func encodePNG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(tb testing.TB, img image.Image) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// decodeJPEG asserts data is a JPEG and returns its size.
func decodeJPEG(tb testing.TB, data []byte) (int, int) {
	tb.Helper()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		tb.Fatalf("output (%d bytes) does not decode: %v", len(data), err)
	}
	if format != "jpeg" {
		tb.Fatalf("output is %s, want jpeg", format)
	}
	return cfg.Width, cfg.Height
}

func TestFit(t *testing.T) {
	tests := []struct {
		name         string
		w, h, size   int
		wantW, wantH int
	}{
		{"Landscape", 640, 480, 128, 128, 96},
		{"Portrait", 480, 640, 100, 75, 100},
		{"Square", 500, 500, 64, 64, 64},
		{"SmallerNotUpscaled", 100, 50, 128, 100, 50},
		{"ExactlySize", 128, 20, 128, 128, 20},
		{"ThinKeepsOnePixel", 1, 1000, 10, 1, 10},
		{"WideKeepsOnePixel", 5000, 2, 100, 100, 1},
		{"Rounds", 1000, 333, 100, 100, 33},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if w, h := Fit(tt.w, tt.h, tt.size); w != tt.wantW || h != tt.wantH {
				t.Errorf("Fit(%d, %d, %d) = %dx%d, want %dx%d", tt.w, tt.h, tt.size, w, h, tt.wantW, tt.wantH)
			}
		})
	}
}

func TestParseParams(t *testing.T) {
	tests := []struct {
		name    string
		params  string
		want    Options
		wantErr string
	}{
		{"None", "", Options{Size: 128, Quality: 85}, ""},
		{"Empty", "{}", Options{Size: 128, Quality: 85}, ""},
		{"Size", `{"size":"64","other":"x"}`, Options{Size: 64, Quality: 85}, ""},
		{"Quality", `{"quality":"50"}`, Options{Size: 128, Quality: 50}, ""},
		{"SizeZero", `{"size":"0"}`, Options{}, "param size must be an integer from 1 to 4096, got \"0\""},
		{"SizeNegative", `{"size":"-5"}`, Options{}, "param size must be"},
		{"SizeText", `{"size":"big"}`, Options{}, "param size must be"},
		{"SizeHuge", `{"size":"100000"}`, Options{}, "param size must be"},
		{"QualityBad", `{"quality":"101"}`, Options{}, "param quality must be"},
		{"NotJSON", `size=64`, Options{}, "decode params"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseParams(tt.params)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseParams(%q) error = %v, want one containing %q", tt.params, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseParams(%q) = %+v, %v, want %+v", tt.params, got, err, tt.want)
			}
		})
	}
}

func TestThumbnail(t *testing.T) {
	src := testImage(640, 480)
	inputs := map[string][]byte{"PNG": encodePNG(t, src), "JPEG": encodeJPEG(t, src)}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Thumbnail(bytes.NewReader(in), &out, Options{Size: 128, Quality: 85}); err != nil {
				t.Fatal(err)
			}
			if w, h := decodeJPEG(t, out.Bytes()); w != 128 || h != 96 {
				t.Errorf("thumbnail is %dx%d, want 128x96", w, h)
			}
		})
	}
	t.Run("TransparentBecomesWhite", func(t *testing.T) {
		var out bytes.Buffer
		if err := Thumbnail(bytes.NewReader(inputs["PNG"]), &out, Options{Size: 128, Quality: 100}); err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(&out)
		if err != nil {
			t.Fatal(err)
		}
		r, g, b, _ := img.At(2, 2).RGBA()
		if r>>8 < 240 || g>>8 < 240 || b>>8 < 240 {
			t.Errorf("transparent corner is (%d,%d,%d), want white", r>>8, g>>8, b>>8)
		}
	})
	t.Run("NoUpscale", func(t *testing.T) {
		var out bytes.Buffer
		if err := Thumbnail(bytes.NewReader(encodePNG(t, testImage(40, 30))), &out, Options{Size: 128, Quality: 85}); err != nil {
			t.Fatal(err)
		}
		if w, h := decodeJPEG(t, out.Bytes()); w != 40 || h != 30 {
			t.Errorf("thumbnail is %dx%d, want 40x30", w, h)
		}
	})
}

func TestRun(t *testing.T) {
	png := encodePNG(t, testImage(640, 480))
	tests := []struct {
		name       string
		input      []byte
		params     string
		wantCode   int
		wantStderr string
		wantW      int
		wantH      int
	}{
		{"Default", png, "", 0, "", 128, 96},
		{"Size64", png, `{"size":"64"}`, 0, "", 64, 48},
		{"Text", []byte("hello, this is not an image"), "", 1, "thumbnail: input is not a JPEG or PNG image: ", 0, 0},
		{"Empty", nil, "", 1, "thumbnail: input is not a JPEG or PNG image: ", 0, 0},
		{"TruncatedPNG", png[:100], "", 1, "thumbnail: input is not a JPEG or PNG image: ", 0, 0},
		{"BadSize", png, `{"size":"0"}`, 2, "thumbnail: param size must be an integer from 1 to 4096", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(bytes.NewReader(tt.input), &out, &errb, tt.params)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d (stderr %q)", code, tt.wantCode, errb.String())
			}
			if !strings.HasPrefix(errb.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want prefix %q", errb.String(), tt.wantStderr)
			}
			if tt.wantCode != 0 {
				if out.Len() != 0 {
					t.Errorf("wrote %d bytes of output on failure", out.Len())
				}
				return
			}
			if w, h := decodeJPEG(t, out.Bytes()); w != tt.wantW || h != tt.wantH {
				t.Errorf("thumbnail is %dx%d, want %dx%d", w, h, tt.wantW, tt.wantH)
			}
		})
	}
}
