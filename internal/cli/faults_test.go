//go:build linux

package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"webrepl/internal/leakcheck"
	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/protocol"
	"webrepl/protocol/remote"
	"webrepl/transport"
)

// TestBootNoise: a board that prints noise (non-UTF-8 bytes, bare line
// feeds) before its first prompt, as boards do on reset, still works.
func TestBootNoise(t *testing.T) {
	leakcheck.Check(t)
	b := mpboardtest.Start(t, &mpboard.Options{BootNoise: true})
	if out := runOK(t, []string{"-d", b.Path}, "eval", "1+1"); strings.TrimSpace(out) != "2" {
		t.Fatalf("eval printed %q", out)
	}
}

// cutAfterCode is a board's line that, once the host has sent the end of a
// piece of code (Ctrl-D) containing marker, calls cut: the board goes away
// or goes silent at that exact point of an exec.
type cutAfterCode struct {
	io.ReadWriteCloser
	marker string
	cut    func()
	armed  bool
	once   sync.Once
}

func (c *cutAfterCode) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(c.marker)) {
		c.armed = true
	}
	n, err := c.ReadWriteCloser.Write(p)
	if c.armed && bytes.IndexByte(p, 0x04) >= 0 {
		c.once.Do(c.cut)
	}
	return n, err
}

// silentReader stops delivering the board's output once muted, until the
// stream is closed.
type silentReader struct {
	io.ReadWriteCloser
	muted  chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (s *silentReader) Read(p []byte) (int, error) {
	select {
	case <-s.muted:
		<-s.closed
		return 0, io.EOF
	default:
		return s.ReadWriteCloser.Read(p)
	}
}

func (s *silentReader) Close() error {
	s.once.Do(func() { close(s.closed) })
	return s.ReadWriteCloser.Close()
}

// TestBoardStopsAnswering: the board goes away, or goes silent, in the
// middle of an exec: the operation ends with a clear error instead of
// hanging.
func TestBoardStopsAnswering(t *testing.T) {
	const code = "import time\nprint('started')\ntime.sleep(2)"
	t.Run("unplugged", func(t *testing.T) {
		leakcheck.Check(t)
		mb := mpboardtest.Start(t, nil)
		s, err := transport.OpenStream(context.Background(), mb.Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		b := remote.NewRaw(&cutAfterCode{ReadWriteCloser: s, marker: "started", cut: func() { mb.Close() }}, nil)
		defer b.Close()
		start := time.Now()
		err = b.Exec(context.Background(), code, io.Discard)
		if err == nil {
			t.Fatal("exec succeeded on a board that went away")
		}
		if time.Since(start) > 10*time.Second {
			t.Errorf("took %v to notice", time.Since(start))
		}
		t.Log(err)
	})
	t.Run("silent", func(t *testing.T) {
		leakcheck.Check(t)
		mb := mpboardtest.Start(t, nil)
		s, err := transport.OpenStream(context.Background(), mb.Path, nil)
		if err != nil {
			t.Fatal(err)
		}
		quiet := &silentReader{ReadWriteCloser: s, muted: make(chan struct{}), closed: make(chan struct{})}
		cut := &cutAfterCode{ReadWriteCloser: quiet, marker: "started", cut: func() { close(quiet.muted) }}
		b := remote.NewRaw(cut, &remote.Options{Raw: &protocol.RawOptions{Silence: 500 * time.Millisecond}})
		defer b.Close()
		err = b.Exec(context.Background(), code, io.Discard)
		if !errors.Is(err, protocol.ErrNoResponse) {
			t.Fatalf("exec on a silent board: %v, want ErrNoResponse", err)
		}
	})
}

// TestInterruptedPutLeavesNoPartialFile cancels a put half-way over a slow
// line: the board holds neither a truncated file under the name nor the
// temporary one.
func TestInterruptedPutLeavesNoPartialFile(t *testing.T) {
	leakcheck.Check(t)
	mb := mpboardtest.Start(t, &mpboard.Options{Baud: 115200})
	open := func() *remote.Board {
		s, err := transport.OpenStream(context.Background(), mb.Path, &transport.StreamOptions{Baud: 115200})
		if err != nil {
			t.Fatal(err)
		}
		b := remote.NewRaw(s, &remote.Options{ChunkSize: 1024})
		t.Cleanup(func() { b.Close() })
		return b
	}
	data := make([]byte, 24<<10)
	for i := range data {
		data[i] = byte(i*31 + i/7)
	}
	b := open()
	ctx, cancel := context.WithCancel(context.Background())
	err := b.Put(ctx, "/big.bin", bytes.NewReader(data), int64(len(data)), func(done int64) {
		if done >= int64(len(data))/2 {
			cancel()
		}
	})
	if err == nil {
		t.Fatal("the interrupted put reported success")
	}
	b.Close()

	es, err := open().List(context.Background(), "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if strings.Contains(e.Name, "big.bin") {
			t.Errorf("after an interrupted put the board holds %s (%d bytes)", e.Name, e.Size)
		}
	}
}
