package protocol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testTimeout bounds every wait in the tests, so that a bug fails a test
// instead of hanging it.
const testTimeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// memFS is an in-memory FS. Names under "/ro/" cannot be created
// (permission denied); "/dir" is a directory.
type memFS struct {
	mu      sync.Mutex
	files   map[string][]byte
	pending int // PendingFiles neither committed nor aborted
	aborts  int
}

var _ FS = (*memFS)(nil)

func newMemFS(files map[string]string) *memFS {
	m := &memFS{files: map[string][]byte{}}
	for k, v := range files {
		m.files[k] = []byte(v)
	}
	return m
}

func (m *memFS) Open(name string) (io.ReadCloser, error) {
	if name == "/dir" {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(data))), nil
}

func (m *memFS) Create(name string) (PendingFile, error) {
	if strings.HasPrefix(name, "/ro/") {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrPermission}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending++
	return &memPending{fs: m, name: name}, nil
}

func (m *memFS) file(name string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.files[name]
	return data, ok
}

func (m *memFS) counts() (pending, aborts int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending, m.aborts
}

type memPending struct {
	fs   *memFS
	name string
	buf  bytes.Buffer
	done bool
}

func (p *memPending) Write(b []byte) (int, error) { return p.buf.Write(b) }

func (p *memPending) Commit() error {
	p.fs.mu.Lock()
	defer p.fs.mu.Unlock()
	if p.done {
		return errors.New("memfs: commit after the end")
	}
	p.done = true
	p.fs.pending--
	p.fs.files[p.name] = bytes.Clone(p.buf.Bytes())
	return nil
}

func (p *memPending) Abort() error {
	p.fs.mu.Lock()
	defer p.fs.mu.Unlock()
	if p.done {
		return nil
	}
	p.done = true
	p.fs.pending--
	p.fs.aborts++
	return nil
}

// served is a Device running Serve in a goroutine that the test waits for.
type served struct {
	d    *Device
	done chan struct{}
	err  error
}

// wait returns Serve's result, failing the test if it does not come.
func (s *served) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return")
		return nil
	}
}

// startDevice creates a device on one end of a memory pair, lets setup
// see it, runs Serve, and returns the other end. Cleanup closes the client
// end and waits for Serve.
func startDevice(t testing.TB, opts *DeviceOptions, setup func(*Device)) (*memLink, *served) {
	t.Helper()
	cl, dl := memPair()
	d, err := NewDevice(dl, opts)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(d)
	}
	s := &served{d: d, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = d.Serve(context.Background())
	}()
	t.Cleanup(func() {
		cl.Close()
		s.wait(t)
	})
	return cl, s
}

// session is a logged-in Client talking to a Device.
type session struct {
	c   *Client
	tap *tapLink // the client's link
	dev *served
	fs  *memFS
}

// newSession starts a device with opts (FS defaults to a memFS holding
// /test.txt) and logs a client in with copts. Cleanup closes both.
func newSession(t testing.TB, opts *DeviceOptions, copts *ClientOptions) *session {
	t.Helper()
	o := DeviceOptions{Password: "secret"}
	if opts != nil {
		o = *opts
	}
	mfs, _ := o.FS.(*memFS)
	if o.FS == nil {
		mfs = newMemFS(map[string]string{"/test.txt": "0123456789"})
		o.FS = mfs
	}
	cl, dev := startDevice(t, &o, nil)
	tap := &tapLink{Link: cl}
	c, err := Login(testCtx(t), tap, o.Password, copts)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &session{c: c, tap: tap, dev: dev, fs: mfs}
}

// readTerminal reads from c until the output contains want, and returns
// everything read.
func readTerminal(t testing.TB, c *Client, want string) string {
	t.Helper()
	ctx := testCtx(t)
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte(want)) {
		n, err := c.ReadContext(ctx, buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("terminal read: %v (got %q, want %q)", err, got, want)
		}
	}
	return string(got)
}

// rawLogin logs in over a bare link, as webrepl_cli.py does.
func rawLogin(t testing.TB, l Link, password string) {
	t.Helper()
	ctx := testCtx(t)
	expectMsg(t, l, false, passwordPrompt)
	if err := l.WriteMessage(ctx, true, []byte(password+"\r")); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, l, false, connectedBanner)
}

// expectMsg reads one message and checks it.
func expectMsg(t testing.TB, l Link, binary bool, want string) {
	t.Helper()
	gotBin, got, err := l.ReadMessage(testCtx(t))
	if err != nil {
		t.Fatalf("read: %v (want %s)", err, describe(binary, []byte(want)))
	}
	if gotBin != binary || string(got) != want {
		t.Fatalf("got %s, want %s", describe(gotBin, got), describe(binary, []byte(want)))
	}
}

func describe(binary bool, p []byte) string {
	if binary {
		return fmt.Sprintf("binary [% x]", p)
	}
	return fmt.Sprintf("text %q", p)
}

// send writes one message or fails the test.
func send(t testing.TB, l Link, binary bool, p []byte) {
	t.Helper()
	if err := l.WriteMessage(testCtx(t), binary, p); err != nil {
		t.Fatal(err)
	}
}

// pattern returns n bytes that use every byte value (for n >= 256) in an
// order that is not just counting.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/256)
	}
	return b
}

// echoREPL is a REPL that echoes its input to the device's terminal.
type echoREPL struct{ d *Device }

func (e *echoREPL) Write(p []byte) (int, error) { return e.d.Write(p) }

// dirNames lists a directory.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
