package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dedupfn/dedupfn/internal/activation"
	"github.com/dedupfn/dedupfn/internal/event"
	"github.com/dedupfn/dedupfn/internal/index"
	"github.com/dedupfn/dedupfn/internal/objects"
	"github.com/dedupfn/dedupfn/internal/pipeline"
	"github.com/dedupfn/dedupfn/internal/runtime"
)

// opLog is the order of the index writes and store writes a pipeline
// makes: "index.Complete+3" is a Complete carrying 3 documents.
type opLog struct {
	mu  sync.Mutex
	ops []string
}

func (l *opLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops = append(l.ops, fmt.Sprintf(format, args...))
}

// take returns the ops logged since the last take.
func (l *opLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ops := l.ops
	l.ops = nil
	return ops
}

type loggedIndex struct {
	index.Index
	log *opLog
}

func (x loggedIndex) Claim(ctx context.Context, key string, parts index.Parts, owner string, lease time.Duration) (index.Claimed, error) {
	x.log.add("index.Claim")
	return x.Index.Claim(ctx, key, parts, owner, lease)
}

func (x loggedIndex) Complete(ctx context.Context, key, token string, c index.Completion) error {
	x.log.add("index.Complete+%d", len(c.Docs))
	return x.Index.Complete(ctx, key, token, c)
}

func (x loggedIndex) PutDoc(ctx context.Context, kind, id string, doc []byte) error {
	x.log.add("index.PutDoc")
	return x.Index.PutDoc(ctx, kind, id, doc)
}

func (x loggedIndex) PutDocs(ctx context.Context, docs []index.Doc) error {
	x.log.add("index.PutDocs+%d", len(docs))
	return x.Index.PutDocs(ctx, docs)
}

func (x loggedIndex) AddActivation(ctx context.Context, r activation.Record, docs ...index.Doc) error {
	x.log.add("index.AddActivation+%d", len(docs))
	return x.Index.AddActivation(ctx, r, docs...)
}

type loggedStore struct {
	objects.Store
	log *opLog
}

func (s loggedStore) Put(ctx context.Context, bucket, key string, r io.Reader, size int64, opts objects.PutOptions) (objects.Info, error) {
	s.log.add("store.Put %s", bucket)
	return s.Store.Put(ctx, bucket, key, r, size, opts)
}

func (s loggedStore) Copy(ctx context.Context, src objects.Info, dstBucket, dstKey string, opts objects.PutOptions) (objects.Info, error) {
	s.log.add("store.Copy %s", dstBucket)
	return s.Store.Copy(ctx, src, dstBucket, dstKey, opts)
}

// An output that triggers nothing has its provenance written with the
// event's last index write: a run's with its completion, a hit's with
// its activation record. A hit then waits for one commit, not two; and
// lineage still finds both outputs.
func TestProvenance_RidesOnTheLastCommit(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	log := &opLog{}
	p := e.replica("logged", loggedIndex{Index: e.idx, log: log}, loggedStore{Store: store, log: log})
	if err := p.Handle(t.Context(), e.put("a.txt", "data")); err != nil {
		t.Fatal(err)
	}
	miss := log.take()
	if err := p.Handle(t.Context(), e.put("b.txt", "data")); err != nil {
		t.Fatal(err)
	}
	hit := log.take()
	if d := e.decisions(); d["a.txt"] != activation.Miss || d["b.txt"] != activation.Hit {
		t.Fatalf("decisions %v, want a miss and a hit", d)
	}
	wantMiss := []string{"index.Claim", "store.Put " + e.out, "index.Complete+3", "index.AddActivation+0"}
	wantHit := []string{"index.Claim", "store.Copy " + e.out, "index.AddActivation+3"}
	if !slices.Equal(miss, wantMiss) || !slices.Equal(hit, wantHit) {
		t.Fatalf("writes:\n miss %v\n  hit %v\nwant\n miss %v\n  hit %v", miss, hit, wantMiss, wantHit)
	}
	for _, key := range []string{"a.txt", "b.txt"} {
		l, err := p.Lineage(t.Context(), e.out, key, func(string) bool { return true })
		if err != nil || len(l.Chain) != 2 || l.Chain[1].Function != "upper" || l.Chain[0].Key != key {
			t.Fatalf("lineage of %s's output: %+v, %v", key, l, err)
		}
	}
}

// An output that triggers a function has its provenance written before
// the output itself, so that its event, however early, is known for
// dedupfn's own; the last stage's output (which triggers nothing) waits
// for the completion.
func TestProvenance_BeforeATriggeredOutput(t *testing.T) {
	c := newChainEnv(t)
	c.deploy(nil)
	log := &opLog{}
	var err error
	c.pipe, err = pipeline.New(pipeline.Config{
		Index: loggedIndex{Index: c.idx, log: log}, Objects: loggedStore{Store: c.objs, log: log}, Registry: c.reg,
		Runtimes: map[string]runtime.Runtime{"stage": c.rt}, Owner: "logged", SpoolDir: t.TempDir(),
		RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.upload("cat.jpg", "cat")
	c.want(c.labels, "cat.jpg.label", "classify(thumbnail(cat))")
	got := strings.Join(log.take(), ", ")
	want := strings.Join([]string{
		"index.Claim", "index.PutDocs+3", "store.Put " + c.thumbs, "index.Complete+0", "index.AddActivation+0",
		"index.Claim", "store.Put " + c.labels, "index.Complete+3", "index.AddActivation+0",
	}, ", ")
	if got != want {
		t.Fatalf("writes\n %s\nwant\n %s", got, want)
	}
}

// racingStore puts a user's object at raceKey right after the first Stat
// of it that finds dedupfn's output there: an upload landing between
// the pipeline's check of an output key and its write.
type racingStore struct {
	objects.Store
	bucket, raceKey string
	once            sync.Once
}

func (s *racingStore) Stat(ctx context.Context, bucket, key string) (objects.Info, error) {
	st, err := s.Store.Stat(ctx, bucket, key)
	if err == nil && bucket == s.bucket && key == s.raceKey && st.Metadata[event.MetaOutputOf] != "" {
		s.once.Do(func() {
			if _, perr := s.Store.Put(ctx, bucket, key, strings.NewReader("the user's own"), 14, objects.PutOptions{}); perr != nil {
				panic(perr)
			}
		})
	}
	return st, err
}

// A run that replaces its earlier output writes it on condition that the
// object there is still the one it checked (If-Match): a user's upload
// that lands in between is never overwritten; the run is refused as
// for any object dedupfn did not write.
func TestOutput_UploadBetweenCheckAndWriteIsNotOverwritten(t *testing.T) {
	e := newEnv(t)
	e.deploy("upper", nil)
	e.handle(e.put("a.txt", "one"))
	if got := e.output("a.txt"); got != "ONE" {
		t.Fatalf("first output %q", got)
	}
	p := e.replica("racing", e.idx, &racingStore{Store: store, bucket: e.out, raceKey: "a.txt"})
	if err := p.Handle(t.Context(), e.put("a.txt", "two")); err != nil {
		t.Fatal(err)
	}
	if got := e.output("a.txt"); got != "the user's own" {
		t.Fatalf("output key holds %q: the user's upload was overwritten", got)
	}
	var refused bool
	for _, a := range e.activations() {
		refused = refused || (a.Decision == activation.Error && strings.Contains(a.Error, "did not write"))
	}
	if !refused {
		t.Fatalf("no activation refused the write: %+v", e.activations())
	}
}
