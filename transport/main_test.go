package transport

import (
	"bytes"
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain fails the run if goroutines are left behind.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	// The fuzzing engine keeps goroutines of its own; check plain runs.
	if f := flag.Lookup("test.fuzz"); code == 0 && (f == nil || f.Value.String() == "") {
		if err := settleGoroutines(before, 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// settleGoroutines waits, polling with a bound, until at most want
// goroutines run. Goroutines that are on their way out (an AfterFunc that
// just closed a stream, a timer callback) need a moment to go.
func settleGoroutines(want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return nil
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("leaked goroutines: %d running, want at most %d:\n%s", n, want, buf)
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond)
	}
}

// leakCheck fails t if, after its other cleanups, more goroutines run than
// when leakCheck was called. Call it first so that its cleanup runs last.
func leakCheck(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		if err := settleGoroutines(before, 5*time.Second); err != nil {
			t.Error(err)
		}
	})
}

// memRW is an in-memory stream: reads come from r (io.EOF at its end),
// writes are recorded one by one.
type memRW struct {
	r io.Reader

	mu     sync.Mutex
	writes [][]byte
	closed bool
}

func newMemRW(in []byte) *memRW { return &memRW{r: bytes.NewReader(in)} }

func (m *memRW) Read(p []byte) (int, error) { return m.r.Read(p) }

func (m *memRW) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, net.ErrClosed
	}
	m.writes = append(m.writes, bytes.Clone(p))
	return len(p), nil
}

func (m *memRW) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func (m *memRW) written() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Join(m.writes, nil)
}

func (m *memRW) calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.writes)
}

func (m *memRW) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// fixedKey makes c mask with key k.
func fixedKey(c *Conn, k [4]byte) *Conn {
	c.maskKey = func() [4]byte { return k }
	return c
}

// unhex turns "82 07 73 65" (spaces optional; "00×N" repeats a byte N
// times) into bytes.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for f := range strings.FieldsSeq(s) {
		n := 1
		if b, count, ok := strings.Cut(f, "×"); ok {
			if _, err := fmt.Sscanf(count, "%d", &n); err != nil {
				t.Fatalf("unhex %q: %v", f, err)
			}
			f = b
		}
		b, err := hex.DecodeString(f)
		if err != nil {
			t.Fatalf("unhex %q: %v", f, err)
		}
		out = append(out, bytes.Repeat(b, n)...)
	}
	return out
}

// pipePair returns a client and a server Conn joined by net.Pipe.
func pipePair(t testing.TB, copts, sopts *Options) (client, server *Conn) {
	t.Helper()
	a, b := net.Pipe()
	co := Options{}
	if copts != nil {
		co = *copts
	}
	so := Options{}
	if sopts != nil {
		so = *sopts
	}
	co.Role, so.Role = Client, Server
	client, server = NewConn(a, nil, &co), NewConn(b, nil, &so)
	t.Cleanup(func() {
		server.Close() // first, so that the client's close frame fails fast
		client.Close()
	})
	return client, server
}

// goAsync runs f in a goroutine and returns a channel with its error. At
// cleanup it closes the closers (which must unblock f) and waits for f.
func goAsync(t testing.TB, f func() error, closers ...io.Closer) <-chan error {
	t.Helper()
	ch := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { ch <- f() })
	t.Cleanup(func() {
		for _, c := range closers {
			c.Close()
		}
		wg.Wait()
	})
	return ch
}

func recvErr(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a goroutine")
		return nil
	}
}

func bg() context.Context { return context.Background() }
