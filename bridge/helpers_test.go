package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"webrepl/bridge"
	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/protocol"
	"webrepl/transport"
)

const testPassword = "a password longer than nine bytes"

// testBridge is a running bridge for a test.
type testBridge struct {
	*bridge.Server
	Addr string // host:port
	URL  string // ws://host:port/
}

// startBridge serves boards with opts (Password defaults to testPassword)
// until the test ends.
func startBridge(tb testing.TB, boards []bridge.BoardConfig, opts *bridge.Options) *testBridge {
	tb.Helper()
	var o bridge.Options
	if opts != nil {
		o = *opts
	}
	if o.Password == "" {
		o.Password = testPassword
	}
	if o.Trace == nil && os.Getenv("BRIDGE_TRACE") != "" {
		o.Trace = testWriter{tb}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := bridge.New(boards, &o)
	if err != nil {
		tb.Fatal(err)
	}
	addr := serve(tb, s)
	if err := s.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return &testBridge{Server: s, Addr: addr, URL: "ws://" + addr + "/"}
}

// serve serves s on a loopback port until the test ends and returns the
// address (startBridge would give the bridge a password).
func serve(t testing.TB, s *bridge.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// testWriter sends log lines to the test log.
type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// startBoard starts a real MicroPython board on a pseudo-terminal and
// returns its config for the bridge.
func startBoard(tb testing.TB, opts *mpboard.Options) (*mpboard.Board, bridge.BoardConfig) {
	tb.Helper()
	b := mpboardtest.Start(tb, opts)
	return b, bridge.BoardConfig{Port: b.Path}
}

// login dials the bridge and logs in with our client.
func login(tb testing.TB, url, password string) *protocol.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := protocol.Login(ctx, conn, password, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// expect reads the terminal until want appears and returns what was read.
func expect(tb testing.TB, r interface {
	ReadContext(context.Context, []byte) (int, error)
}, want string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		n, err := r.ReadContext(ctx, buf)
		got = append(got, buf[:n]...)
		if err != nil {
			tb.Fatalf("waiting for %q: %v; got %q", want, err, got)
		}
	}
	return string(got)
}

// typeLine types s and Enter.
func typeLine(tb testing.TB, c *protocol.Client, s string) {
	tb.Helper()
	if _, err := c.Write([]byte(s + "\r")); err != nil {
		tb.Fatal(err)
	}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// health is the answer of /healthz.
type health struct {
	Status string `json:"status"`
	Boards []struct {
		Name      string `json:"name"`
		Connected bool   `json:"connected"`
		Error     string `json:"error"`
		Clients   int    `json:"clients"`
		Observers int    `json:"observers"`
	} `json:"boards"`
}

func healthz(tb testing.TB, br *testBridge) health {
	tb.Helper()
	resp, err := http.Get("http://" + br.Addr + "/healthz")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		tb.Fatal(err)
	}
	return h
}

// dialRaw opens a WebSocket to the bridge without logging in. It is closed
// when the test ends.
func dialRaw(tb testing.TB, url string, opts *transport.DialOptions) *transport.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, url, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// drain reads messages until the connection ends and returns their joined
// payloads, and ctx's error if ctx ended it.
func drain(ctx context.Context, conn *transport.Conn) ([]byte, error) {
	var got []byte
	for {
		_, p, err := conn.ReadMessage(ctx)
		got = append(got, p...)
		if err != nil {
			return got, ctx.Err()
		}
	}
}
