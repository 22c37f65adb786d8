package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/dedupfn/dedupfn/internal/testutil/harness"
)

// benchImages returns n distinct 1024x768 JPEGs.
func benchImages(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		img := image.NewRGBA(image.Rect(0, 0, 1024, 768))
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for y := 0; y < 768; y += 4 {
			for x := 0; x < 1024; x += 4 {
				c := color.RGBA{uint8(r.IntN(256)), uint8(x), uint8(y), 255}
				for dy := range 4 {
					for dx := range 4 {
						img.Set(x+dx, y+dy, c)
					}
				}
			}
		}
		var buf bytes.Buffer
		jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80})
		out[i] = buf.Bytes()
	}
	return out
}

type benchResult struct {
	wall       time.Duration
	runs       int64
	functionMS float64
}

// runWorkload starts a fresh server, deploys the thumbnail function with
// extra deploy flags, uploads every image copies times under distinct keys
// (4 uploaders), and waits until every upload has its activation.
func runWorkload(b *testing.B, images [][]byte, copies int, deployFlags ...string) benchResult {
	s := harness.StartServer(b, b.TempDir(), "--create-bucket", "images", "--create-bucket", "thumbnails", "--concurrency", "4")
	s.CLI(append([]string{"fn", "deploy", "thumbnail", "--wasm", harness.Thumbnail, "--bucket", "images",
		"--output-bucket", "thumbnails"}, deployFlags...)...)
	mc := s.MinIO()
	type upload struct {
		key  string
		body []byte
	}
	var ups []upload
	for c := range copies {
		for i, img := range images {
			ups = append(ups, upload{fmt.Sprintf("u%d/img%03d.jpg", c, i), img})
		}
	}
	rand.Shuffle(len(ups), func(i, j int) { ups[i], ups[j] = ups[j], ups[i] })
	start := time.Now()
	work := make(chan upload)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for u := range work {
				if _, err := mc.PutObject(context.Background(), "images", u.key, bytes.NewReader(u.body), int64(len(u.body)), minio.PutObjectOptions{}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, u := range ups {
		work <- u
	}
	close(work)
	wg.Wait()
	st := s.WaitEvents(int64(len(ups)), 10*time.Minute)
	res := benchResult{wall: time.Since(start), runs: st.Runs, functionMS: st.FunctionMS}
	if st.Errors != 0 {
		b.Fatalf("stats %+v: errors", st)
	}
	return res
}

// BenchmarkDedupVsBaseline runs the same workload (20 distinct 1024x768
// JPEGs, each uploaded 3 times under different keys) through the thumbnail
// function twice on this machine: with --no-dedup (the plain
// notification → function setup) and with dedup. It reports the ratios.
func BenchmarkDedupVsBaseline(b *testing.B) {
	images := benchImages(20)
	const copies = 3
	for range b.N {
		base := runWorkload(b, images, copies, "--no-dedup")
		dedup := runWorkload(b, images, copies)
		b.ReportMetric(float64(base.runs), "baseline-runs")
		b.ReportMetric(float64(dedup.runs), "dedup-runs")
		b.ReportMetric(base.functionMS/dedup.functionMS, "function-time-ratio")
		b.ReportMetric(base.wall.Seconds()/dedup.wall.Seconds(), "wall-time-ratio")
		b.Logf("%d uploads (%d distinct): baseline %d runs, %.0f ms function time, %s wall; dedup %d runs, %.0f ms function time, %s wall",
			len(images)*copies, len(images), base.runs, base.functionMS, base.wall.Round(time.Millisecond),
			dedup.runs, dedup.functionMS, dedup.wall.Round(time.Millisecond))
		if dedup.runs != int64(len(images)) || base.runs != int64(len(images)*copies) {
			b.Fatalf("runs: dedup %d (want %d), baseline %d (want %d)", dedup.runs, len(images), base.runs, len(images)*copies)
		}
	}
}
