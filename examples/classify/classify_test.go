package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"strings"
	"testing"
)

func pngOf(tb testing.TB, w, h int, c color.Color) []byte {
	tb.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func TestClassify_Labels(t *testing.T) {
	for _, tc := range []struct {
		w, h  int
		c     color.Color
		want  Labels
		label string
	}{
		{40, 20, color.NRGBA{R: 10, G: 10, B: 10, A: 255}, Labels{Width: 40, Height: 20, Orientation: "landscape", Mean: "#0a0a0a", Tone: "dark"}, "dark landscape"},
		{10, 30, color.NRGBA{R: 250, G: 240, B: 230, A: 255}, Labels{Width: 10, Height: 30, Orientation: "portrait", Mean: "#faf0e6", Tone: "light"}, "light portrait"},
		{16, 16, color.NRGBA{R: 255, A: 255}, Labels{Width: 16, Height: 16, Orientation: "square", Mean: "#ff0000", Tone: "dark"}, "red square"},
	} {
		got, err := Classify(bytes.NewReader(pngOf(t, tc.w, tc.h, tc.c)))
		if err != nil || got != tc.want {
			t.Errorf("%s: Classify = %+v, %v; want %+v", tc.label, got, err, tc.want)
		}
	}
}

func TestClassify_SameBytesSameLabels(t *testing.T) {
	in := pngOf(t, 20, 10, color.NRGBA{G: 200, A: 255})
	var a, b bytes.Buffer
	if err := run(bytes.NewReader(in), &a); err != nil {
		t.Fatal(err)
	}
	if err := run(bytes.NewReader(in), &b); err != nil {
		t.Fatal(err)
	}
	var l Labels
	if a.String() != b.String() || json.Unmarshal(a.Bytes(), &l) != nil || l.Width != 20 {
		t.Fatalf("outputs %q and %q, want the same JSON labels", a.String(), b.String())
	}
}

func TestClassify_RefusesNonImages(t *testing.T) {
	if _, err := Classify(strings.NewReader("not an image")); err == nil || !strings.Contains(err.Error(), "not a JPEG or PNG") {
		t.Fatalf("Classify(text) = %v, want a clear refusal", err)
	}
}

func TestClassify_TheExampleImages(t *testing.T) {
	for _, f := range []string{"../thumbnail/testdata/cat.jpg", "../thumbnail/testdata/dog.png"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		l, err := Classify(bytes.NewReader(b))
		if err != nil || l.Width == 0 || l.Mean == "" {
			t.Errorf("%s: %+v, %v", f, l, err)
		}
	}
}
