package bridge

import (
	"bytes"
	"os"
	"sync"
	"time"
)

// opInput is the board's output while a file operation runs: the reader
// goroutine adds, the operation reads, with a deadline (so the raw REPL
// can bound its waits) and without limit (the operation reads all it
// asked for).
type opInput struct {
	mu       sync.Mutex
	cond     *sync.Cond
	buf      []byte
	err      error // set by fail: the board is gone
	deadline time.Time
	timer    *time.Timer
}

func newOpInput() *opInput {
	in := &opInput{}
	in.cond = sync.NewCond(&in.mu)
	return in
}

func (in *opInput) add(p []byte) {
	in.mu.Lock()
	in.buf = append(in.buf, p...)
	in.mu.Unlock()
	in.cond.Broadcast()
}

func (in *opInput) fail(err error) {
	in.mu.Lock()
	if in.err == nil {
		in.err = err
	}
	in.mu.Unlock()
	in.cond.Broadcast()
}

// Read returns buffered output, waiting for some until the deadline.
func (in *opInput) Read(p []byte) (int, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for len(in.buf) == 0 {
		if in.err != nil {
			return 0, in.err
		}
		if !in.deadline.IsZero() && !time.Now().Before(in.deadline) {
			return 0, os.ErrDeadlineExceeded
		}
		in.cond.Wait()
	}
	n := copy(p, in.buf)
	in.buf = in.buf[n:]
	if len(in.buf) == 0 {
		in.buf = nil
	}
	return n, nil
}

func (in *opInput) setDeadline(t time.Time) error {
	in.mu.Lock()
	in.deadline = t
	if in.timer != nil {
		in.timer.Stop()
		in.timer = nil
	}
	if !t.IsZero() {
		in.timer = time.AfterFunc(time.Until(t), in.cond.Broadcast)
	}
	in.mu.Unlock()
	in.cond.Broadcast()
	return nil
}

// waitFor waits until the buffered output contains marker, the board is
// gone, or wait has passed.
func (in *opInput) waitFor(marker []byte, wait time.Duration) {
	stop := time.AfterFunc(wait, in.cond.Broadcast)
	defer stop.Stop()
	end := time.Now().Add(wait)
	in.mu.Lock()
	defer in.mu.Unlock()
	for !bytes.Contains(in.buf, marker) && in.err == nil && time.Now().Before(end) {
		in.cond.Wait()
	}
}

// peek returns a copy of what is buffered.
func (in *opInput) peek() []byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	return bytes.Clone(in.buf)
}

// rest returns what follows the last marker in the buffer (everything if
// there is none) and empties the buffer.
func (in *opInput) rest(marker []byte) []byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	b := in.buf
	if i := bytes.LastIndex(b, marker); i >= 0 {
		b = b[i+len(marker):]
	} else {
		b = nil // banner and raw-REPL leftovers: not for the terminal
	}
	in.buf = nil
	if in.timer != nil {
		in.timer.Stop()
	}
	return bytes.Clone(b)
}

// inputQueue holds terminal input on its way to the board. Writers block
// while it is full; the input pump takes it a chunk at a time.
//
// A writer may also skip the queue (direct) when nothing waits and nothing
// is being written: the typed byte then goes to the board from the
// writer's goroutine, without waking the pump. busy keeps the order: it is
// set while a chunk (the pump's or a direct one) is on its way, and take
// waits for it.
type inputQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	buf    []byte
	limit  int
	busy   bool
	closed bool
}

func newInputQueue(limit int) *inputQueue {
	q := &inputQueue{limit: limit}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// put queues p, waiting while the queue is full. It returns false once the
// queue is closed.
func (q *inputQueue) put(p []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(p) > 0 {
		for !q.closed && len(q.buf) >= q.limit {
			q.cond.Wait()
		}
		if q.closed {
			return false
		}
		n := min(len(p), q.limit-len(q.buf))
		q.buf = append(q.buf, p[:n]...)
		p = p[n:]
		q.cond.Broadcast()
	}
	return true
}

// direct reports whether p (at most max bytes) may go straight to the
// board: nothing waits or is on its way. If so, the queue is busy until
// release.
func (q *inputQueue) direct(p []byte, max int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.busy || len(q.buf) > 0 || len(p) > max {
		return false
	}
	q.busy = true
	return true
}

// release ends the busy state set by direct or take.
func (q *inputQueue) release() {
	q.mu.Lock()
	q.busy = false
	q.mu.Unlock()
	q.cond.Broadcast()
}

// take copies up to len(chunk) queued bytes into chunk, waiting for some
// (and for a chunk on its way). The queue is then busy until release. more
// says whether bytes are left behind; ok is false once the queue is
// closed.
func (q *inputQueue) take(chunk []byte) (n int, more, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for (len(q.buf) == 0 || q.busy) && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return 0, false, false
	}
	q.busy = true
	n = copy(chunk, q.buf)
	q.buf = q.buf[n:]
	if len(q.buf) == 0 {
		q.buf = nil
	}
	q.cond.Broadcast()
	return n, len(q.buf) > 0, true
}

func (q *inputQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// outQueue holds output on its way to one client: shared, read-only
// chunks, at most limit bytes of them (each counted with chunkOverhead).
type outQueue struct {
	mu        sync.Mutex
	bufs      [][]byte
	size      int // queued bytes, with chunkOverhead per chunk
	limit     int
	closed    bool
	finishing bool          // pop returns nil once the queue is empty
	wake      chan struct{} // capacity 1
}

// chunkOverhead is what a queued chunk costs besides its bytes (its slice
// header and allocation), so that a backlog of many tiny chunks (one
// keystroke's echo each) is bounded in memory too.
const chunkOverhead = 32

func newOutQueue(limit int) *outQueue {
	return &outQueue{limit: limit, wake: make(chan struct{}, 1)}
}

// push queues p (which must not change afterwards). It returns false, and
// queues nothing, if that would go over the limit or the queue is closed.
func (q *outQueue) push(p []byte) bool {
	q.mu.Lock()
	if q.closed || q.size+len(p)+chunkOverhead > q.limit {
		q.mu.Unlock()
		return false
	}
	q.bufs = append(q.bufs, p)
	q.size += len(p) + chunkOverhead
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// pop returns the queued chunks, waiting for some; nil once closed.
func (q *outQueue) pop(dst [][]byte) [][]byte {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil
		}
		if len(q.bufs) > 0 {
			dst = append(dst[:0], q.bufs...)
			clear(q.bufs)
			q.bufs = q.bufs[:0]
			q.size = 0
			q.mu.Unlock()
			return dst
		}
		if q.finishing {
			q.mu.Unlock()
			return nil
		}
		q.mu.Unlock()
		<-q.wake
	}
}

// finish makes pop return what is queued, then nil.
func (q *outQueue) finish() {
	q.mu.Lock()
	q.finishing = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.bufs = nil
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
