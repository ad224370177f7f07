package protocol

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// errRawSilent is rawInput.fill's answer when the silence limit passed.
var errRawSilent = errors.New("silent")

// readDeadliner is a stream whose reads can be bounded by a deadline.
type readDeadliner interface {
	SetReadDeadline(t time.Time) error
}

// rawRead is the result of a Read run in a helper goroutine.
type rawRead struct {
	n   int
	err error
}

// rawInput reads a byte stream for a Raw: a buffer of bytes read but not
// consumed, and reads bounded by a silence limit and a ctx.
//
// If the stream can take read deadlines, reads use them (a ctx is turned
// into a past deadline by context.AfterFunc). Otherwise a Read runs in a
// helper goroutine (asyncRead) into rbuf; a wait that gives up leaves it
// pending, and the next fill waits for the same Read, so no input is
// lost and at most one Read is ever in flight.
//
// Only the Raw's current operation uses it (Raw.mu).
type rawInput struct {
	r  io.Reader
	dl readDeadliner // nil: use helper goroutines

	buf []byte // buf[off:] is read but not consumed
	off int

	rbuf    []byte       // what Read reads into; owned by the pending Read if any
	rerr    error        // sticky error of Read (not a timeout)
	pending chan rawRead // the helper goroutine's Read in flight, or nil

	dlMu    sync.Mutex // serialises SetReadDeadline between fill and its AfterFunc
	dlFired bool       // the AfterFunc of the current read has set a past deadline
}

func newRawInput(r io.Reader) *rawInput {
	in := &rawInput{r: r, rbuf: make([]byte, rawReadBufSize)}
	if d, ok := r.(readDeadliner); ok && d.SetReadDeadline(time.Time{}) == nil {
		in.dl = d
	}
	return in
}

func (in *rawInput) pend() []byte { return in.buf[in.off:] }
func (in *rawInput) len() int     { return len(in.buf) - in.off }

func (in *rawInput) consume(n int) {
	in.off += n
	if in.off >= len(in.buf) {
		in.buf, in.off = in.buf[:0], 0
	}
}

func (in *rawInput) discard() { in.consume(in.len()) }

func (in *rawInput) add(p []byte) {
	if in.off > 0 && in.off >= len(in.buf)/2 {
		n := copy(in.buf, in.buf[in.off:])
		in.buf, in.off = in.buf[:n], 0
	}
	in.buf = append(in.buf, p...)
}

// fill reads until at least one more byte is buffered. With silence > 0
// it gives up with errRawSilent when nothing arrives for that long. It
// returns ctx.Err() (unwrapped) when ctx is done, or the stream's error,
// which then sticks.
func (in *rawInput) fill(ctx context.Context, silence time.Duration) error {
	var deadline time.Time
	if silence > 0 {
		deadline = time.Now().Add(silence)
	}
	for {
		if in.rerr != nil {
			return in.rerr
		}
		var n int
		var err error
		if in.dl != nil {
			n, err = in.readDeadline(ctx, deadline)
		} else {
			n, err = in.readAsync(ctx, deadline)
		}
		in.add(in.rbuf[:n])
		switch {
		case err == nil:
		case errors.Is(err, errRawSilent), ctx.Err() != nil && errors.Is(err, ctx.Err()):
			if n > 0 {
				return nil
			}
			return err
		default:
			in.rerr = err
		}
		if n > 0 {
			return nil
		}
	}
}

// readAsync waits for the pending Read, starting one if there is none.
func (in *rawInput) readAsync(ctx context.Context, deadline time.Time) (int, error) {
	if in.pending == nil {
		ch := make(chan rawRead, 1)
		in.pending = ch
		go asyncRead(in.r, in.rbuf, ch)
	}
	select {
	case res := <-in.pending:
		in.pending = nil
		return res.n, res.err
	default:
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return 0, errRawSilent
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case res := <-in.pending:
		in.pending = nil
		return res.n, res.err
	case <-timeout:
		return 0, errRawSilent
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// asyncRead is the helper goroutine of readAsync. It ends when Read
// returns: when data comes or the stream is closed.
func asyncRead(r io.Reader, p []byte, ch chan<- rawRead) {
	n, err := r.Read(p)
	ch <- rawRead{n, err}
}

// readDeadline reads once with a read deadline: the silence deadline, or
// a past one as soon as ctx is done.
func (in *rawInput) readDeadline(ctx context.Context, deadline time.Time) (int, error) {
	in.dlMu.Lock()
	in.dlFired = false
	in.dlMu.Unlock()
	var stop func() bool
	fired := make(chan struct{})
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			in.dlMu.Lock()
			in.dlFired = true
			_ = in.dl.SetReadDeadline(time.Unix(1, 0))
			in.dlMu.Unlock()
			close(fired)
		})
	}
	in.dlMu.Lock()
	var err error
	if !in.dlFired {
		err = in.dl.SetReadDeadline(deadline)
	}
	in.dlMu.Unlock()
	n := 0
	if err == nil {
		n, err = in.r.Read(in.rbuf)
	}
	if stop != nil && !stop() {
		<-fired // so that it cannot touch the deadline of a later read
	}
	if err != nil && isTimeout(err) {
		if cerr := ctx.Err(); cerr != nil {
			return n, cerr
		}
		return n, errRawSilent
	}
	return n, err
}

// clearDeadline removes the read deadline, so that the stream's next
// reader is not affected.
func (in *rawInput) clearDeadline() {
	if in.dl != nil {
		_ = in.dl.SetReadDeadline(time.Time{})
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
