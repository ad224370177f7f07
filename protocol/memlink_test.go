package protocol

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
)

// memMsg is one message in a memQueue.
type memMsg struct {
	binary bool
	p      []byte
}

// memQueue carries messages one way. It never blocks a writer.
type memQueue struct {
	mu           sync.Mutex
	msgs         []memMsg
	writerClosed bool          // the reader gets io.EOF once msgs is drained
	readerClosed bool          // reads fail, writes fail
	wake         chan struct{} // closed and replaced on every change
}

func newMemQueue() *memQueue { return &memQueue{wake: make(chan struct{})} }

func (q *memQueue) changedLocked() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// memLink is one end of an in-memory Link pair. Messages are copied on
// write. Close on one end gives the other end io.EOF after the messages
// already sent, and makes its writes fail with net.ErrClosed. A cancelled
// ctx closes the link, as the Link contract says.
type memLink struct {
	in, out   *memQueue
	closeOnce sync.Once
}

var _ Link = (*memLink)(nil)

// memPair returns two connected ends.
func memPair() (a, b *memLink) {
	ab, ba := newMemQueue(), newMemQueue()
	return &memLink{in: ba, out: ab}, &memLink{in: ab, out: ba}
}

func (l *memLink) ReadMessage(ctx context.Context) (bool, []byte, error) {
	q := l.in
	for {
		q.mu.Lock()
		if q.readerClosed {
			q.mu.Unlock()
			return false, nil, net.ErrClosed
		}
		if len(q.msgs) > 0 {
			m := q.msgs[0]
			q.msgs[0] = memMsg{}
			q.msgs = q.msgs[1:]
			q.mu.Unlock()
			return m.binary, m.p, nil
		}
		if q.writerClosed {
			q.mu.Unlock()
			return false, nil, io.EOF
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			l.Close()
			return false, nil, ctx.Err()
		}
	}
}

func (l *memLink) WriteMessage(ctx context.Context, binary bool, p []byte) error {
	if err := ctx.Err(); err != nil {
		l.Close()
		return err
	}
	q := l.out
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.writerClosed || q.readerClosed {
		return net.ErrClosed
	}
	q.msgs = append(q.msgs, memMsg{binary: binary, p: bytes.Clone(p)})
	q.changedLocked()
	return nil
}

func (l *memLink) Close() error {
	l.closeOnce.Do(func() {
		for _, q := range []*memQueue{l.in, l.out} {
			q.mu.Lock()
			if q == l.in {
				q.readerClosed = true
				q.msgs = nil
			} else {
				q.writerClosed = true
			}
			q.changedLocked()
			q.mu.Unlock()
		}
	})
	return nil
}

// tapLink records the messages that pass through a Link.
type tapLink struct {
	Link
	mu       sync.Mutex
	sent     []memMsg
	received []memMsg
}

func (t *tapLink) ReadMessage(ctx context.Context) (bool, []byte, error) {
	binary, p, err := t.Link.ReadMessage(ctx)
	if err == nil {
		t.mu.Lock()
		t.received = append(t.received, memMsg{binary, bytes.Clone(p)})
		t.mu.Unlock()
	}
	return binary, p, err
}

func (t *tapLink) WriteMessage(ctx context.Context, binary bool, p []byte) error {
	err := t.Link.WriteMessage(ctx, binary, p)
	if err == nil {
		t.mu.Lock()
		t.sent = append(t.sent, memMsg{binary, bytes.Clone(p)})
		t.mu.Unlock()
	}
	return err
}

func (t *tapLink) Sent() []memMsg {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]memMsg(nil), t.sent...)
}

func (t *tapLink) Received() []memMsg {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]memMsg(nil), t.received...)
}
