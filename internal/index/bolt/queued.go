package bolt

import (
	"sync"

	bbolt "go.etcd.io/bbolt"

	"github.com/dedupfn/dedupfn/internal/index"
)

// queued tracks the completions whose commit is queued, not yet done
// (Complete): their claims are answered from memory (running), their
// documents from here, so this process reads its own writes. GetDoc
// answers from the documents; the other reads and writes of documents
// first wait for those commits (settle).
type queued struct {
	mu    sync.Mutex
	idle  *sync.Cond     // on mu: signalled when n drops to 0
	n     int            // completions queued
	kinds map[string]int // kind → completions queued with documents of it
	gen   uint64
	docs  map[string]queuedDoc // docKey → the newest queued write
}

type queuedDoc struct {
	doc []byte
	gen uint64
}

// add notes a completion queued with docs; the caller passes the
// returned generation to done once its commit is over.
func (q *queued) add(docs []index.Doc) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n++
	q.gen++
	if q.docs == nil {
		q.docs, q.kinds = map[string]queuedDoc{}, map[string]int{}
	}
	for _, d := range docs {
		q.docs[string(docKey(d.Kind, d.ID))] = queuedDoc{doc: d.Doc, gen: q.gen}
		q.kinds[d.Kind]++
	}
	return q.gen
}

// done forgets a completion's documents, committed or failed: the file
// answers for them now.
func (q *queued) done(docs []index.Doc, gen uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n--; q.n == 0 && q.idle != nil {
		q.idle.Broadcast()
	}
	for _, d := range docs {
		if q.kinds[d.Kind]--; q.kinds[d.Kind] == 0 {
			delete(q.kinds, d.Kind)
		}
		k := string(docKey(d.Kind, d.ID))
		if q.docs[k].gen == gen {
			delete(q.docs, k)
		}
	}
}

// wait returns once no completion is queued (Close: nothing queues any).
func (q *queued) wait() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.idle == nil {
		q.idle = sync.NewCond(&q.mu)
	}
	for q.n > 0 {
		q.idle.Wait()
	}
}

func (q *queued) get(kind, id string) ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d, ok := q.docs[string(docKey(kind, id))]
	return d.doc, ok
}

func (q *queued) pending(kind string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.kinds[kind] > 0
}

// settle waits until every completion queued so far with documents of
// kind is committed: a write through the group commit is done only after
// all queued before it.
func (d *DB) settle(kind string) error {
	if !d.queued.pending(kind) {
		return nil
	}
	return d.w.Update(func(*bbolt.Tx) error { return nil })
}
