// Package bufpipe is an in-memory, buffered, full-duplex byte stream pair:
// what a serial line or a socket gives, with none of net.Pipe's lock-step
// (a net.Pipe write blocks until the other side reads, so two sides that
// both write before reading deadlock, which real links never do).
package bufpipe

import (
	"io"
	"net"
	"sync"
)

// New returns the two ends of a pipe. What one end writes, the other reads.
// Each direction holds up to limit bytes before writes block; zero means
// 1 MiB.
func New(limit int) (a, b *End) {
	if limit <= 0 {
		limit = 1 << 20
	}
	ab, ba := newQueue(limit), newQueue(limit)
	return &End{r: ba, w: ab}, &End{r: ab, w: ba}
}

// End is one end of a pipe. Read and Write may run at the same time from
// different goroutines. Close closes both directions at this end: pending
// and later reads and writes on both ends fail with net.ErrClosed (reads on
// the other end first drain what was written, then get io.EOF).
type End struct {
	r, w *queue
}

func (e *End) Read(p []byte) (int, error)  { return e.r.read(p) }
func (e *End) Write(p []byte) (int, error) { return e.w.write(p) }

// Close is idempotent.
func (e *End) Close() error {
	e.w.close()
	e.r.close()
	return nil
}

type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	limit  int
	closed bool
}

func newQueue(limit int) *queue {
	q := &queue{limit: limit}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) read(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.buf) == 0 {
		if q.closed {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		q.cond.Wait()
	}
	n := copy(p, q.buf)
	q.buf = q.buf[n:]
	q.cond.Broadcast()
	return n, nil
}

func (q *queue) write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < len(p) {
		if q.closed {
			return n, net.ErrClosed
		}
		room := q.limit - len(q.buf)
		if room == 0 {
			q.cond.Wait()
			continue
		}
		k := min(room, len(p)-n)
		q.buf = append(q.buf, p[n:n+k]...)
		n += k
		q.cond.Broadcast()
	}
	return n, nil
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
