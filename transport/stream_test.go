package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.bug.st/serial"
)

// allBytes is every byte value once.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// exchange writes all byte values from a to b and back, and checks them.
func exchange(t *testing.T, a, b io.ReadWriter) {
	t.Helper()
	all := allBytes()
	for _, dir := range []struct {
		name string
		w    io.Writer
		r    io.Reader
	}{{"there", a, b}, {"back", b, a}} {
		if n, err := dir.w.Write(all); n != len(all) || err != nil {
			t.Fatalf("%s: wrote %d, %v", dir.name, n, err)
		}
		got := make([]byte, len(all))
		if _, err := io.ReadFull(dir.r, got); err != nil || !bytes.Equal(got, all) {
			t.Fatalf("%s: read % x, %v", dir.name, head(got), err)
		}
	}
}

func TestOpenStreamTCP(t *testing.T) {
	for _, scheme := range []string{"tcp", "socket"} {
		t.Run(scheme, func(t *testing.T) {
			leakCheck(t)
			ln := listen(t)
			accepted := make(chan net.Conn, 1)
			done := goAsync(t, func() error {
				c, err := ln.Accept()
				if err != nil {
					return err
				}
				accepted <- c
				return nil
			}, ln)
			rw, err := OpenStream(bg(), scheme+"://"+ln.Addr().String(), &StreamOptions{ResetOnOpen: true, Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rw.Close() })
			if err := recvErr(t, done); err != nil {
				t.Fatal(err)
			}
			peer := <-accepted
			t.Cleanup(func() { peer.Close() })
			exchange(t, rw, peer)
			checkNoDelay(t, rw)
			if err := rw.Close(); err != nil {
				t.Fatal(err)
			}
			if n, err := peer.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Errorf("peer read after Close: %d, %v; want io.EOF", n, err)
			}
		})
	}
}

func TestOpenStreamTCPErrors(t *testing.T) {
	leakCheck(t)
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		rw, err := OpenStream(bg(), "tcp://"+addr, nil)
		if rw != nil || err == nil {
			t.Fatalf("got %v, %v; want a nil stream and an error", rw, err)
		}
		if !strings.HasPrefix(err.Error(), "webrepl: connect to tcp://"+addr+": ") || !strings.Contains(err.Error(), "refused") {
			t.Errorf("unclear error: %v", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) {
			t.Errorf("%v does not unwrap to a *net.OpError", err)
		}
		t.Log(err)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(bg())
		cancel()
		rw, err := OpenStream(ctx, "tcp://127.0.0.1:1", nil)
		if rw != nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, %v; want context.Canceled", rw, err)
		}
	})
	t.Run("no port", func(t *testing.T) {
		if _, err := OpenStream(bg(), "tcp://127.0.0.1", nil); err == nil || !strings.Contains(err.Error(), "missing port") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestOpenStreamWrongKind: OpenStream refuses WebREPL addresses and Dial
// refuses raw ones, each naming the other, before touching anything.
func TestOpenStreamWrongKind(t *testing.T) {
	for _, addr := range []string{"192.168.4.1", "ws://h/", "wss://h/", "serial:///dev/no-such-tty?framing=ws"} {
		rw, err := OpenStream(bg(), addr, nil)
		if rw != nil || err == nil || !strings.Contains(err.Error(), "open it with Dial") {
			t.Errorf("%s: got %v, %v", addr, rw, err)
		}
	}
	for _, addr := range []string{"tcp://127.0.0.1:1", "auto", "usb:2e8a:0005", "id:123", "/dev/no-such-tty", "COM3", "serial:///dev/no-such-tty?baud=9600"} {
		c, err := Dial(bg(), addr, nil)
		if c != nil || err == nil || !strings.Contains(err.Error(), "OpenStream") {
			t.Errorf("%s: got %v, %v", addr, c, err)
		}
	}
	if rw, err := OpenStream(bg(), "/dev/tty", &StreamOptions{Baud: -1}); rw != nil || err == nil || !strings.Contains(err.Error(), "baud") {
		t.Errorf("negative baud: got %v, %v", rw, err)
	}
	if rw, err := OpenStream(bg(), "ftp://x", nil); rw != nil || err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Errorf("bad address: got %v, %v", rw, err)
	}
}

// lineRecorder is a serial.Port that records DTR and RTS changes.
type lineRecorder struct {
	serial.Port // nil: only the methods below are used

	mu    sync.Mutex
	dtr   bool
	rts   bool
	start time.Time
	log   []string
}

func (p *lineRecorder) set(line *bool, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	*line = on
	state := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	p.log = append(p.log, "DTR="+state(p.dtr)+" RTS="+state(p.rts))
}

func (p *lineRecorder) SetDTR(on bool) error { p.set(&p.dtr, on); return nil }
func (p *lineRecorder) SetRTS(on bool) error { p.set(&p.rts, on); return nil }

// TestPulseReset: the sequence goes through RTS alone (reset) and DTR
// alone only after both were clear, and ends with both asserted.
func TestPulseReset(t *testing.T) {
	p := &lineRecorder{dtr: true, rts: true}
	s := &Serial{path: "/dev/fake", port: p}
	start := time.Now()
	if err := s.pulseReset(bg()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < resetHold+resetSettle {
		t.Errorf("took %v, want at least %v", d, resetHold+resetSettle)
	}
	want := []string{"DTR=0 RTS=1", "DTR=0 RTS=0", "DTR=1 RTS=0", "DTR=1 RTS=1"}
	if strings.Join(p.log, ", ") != strings.Join(want, ", ") {
		t.Errorf("got %q, want %q", p.log, want)
	}

	ctx, cancel := context.WithCancel(bg())
	cancel()
	p = &lineRecorder{dtr: true, rts: true}
	s = &Serial{path: "/dev/fake", port: p}
	if err := s.pulseReset(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v", err)
	}
}
