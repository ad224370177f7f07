package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"webrepl/internal/bufpipe"
	"webrepl/internal/emulator"
	"webrepl/internal/emulator/emutest"
	"webrepl/internal/leakcheck"
	"webrepl/internal/pty"
	"webrepl/protocol"
	"webrepl/transport"
)

const password = "secret"

// device is an emulator serving a fresh directory, reachable over one kind
// of link.
type device struct {
	*emutest.Device
	dial func(t *testing.T) protocol.Link
}

// link kinds: the same test body runs over each.
var links = []struct {
	name  string
	start func(t *testing.T, opts emulator.Options) *device
}{
	{"pipe", startPipe},
	{"tcp", startTCP},
	{"pty", startPty},
}

func newEmulator(t *testing.T, opts emulator.Options) *device {
	t.Helper()
	if opts.Password == "" {
		opts.Password = password
	}
	return &device{Device: emutest.New(t, opts)}
}

// serve runs fn in a goroutine that the test waits for at its end, after
// cancelling its context.
func serve(t *testing.T, fn func(ctx context.Context)) { emutest.Go(t, fn) }

// startPipe frames WebREPL straight on an in-memory pipe. Each dial makes a
// new pipe with its own device session.
func startPipe(t *testing.T, opts emulator.Options) *device {
	d := newEmulator(t, opts)
	d.dial = func(t *testing.T) protocol.Link {
		c, s := bufpipe.New(0)
		serve(t, func(ctx context.Context) { d.Emu.ServeStream(ctx, s) })
		link := transport.NewConn(c, nil, &transport.Options{Role: transport.Client})
		t.Cleanup(func() { link.Close() })
		return link
	}
	return d
}

// startTCP serves WebSocket on loopback TCP, as a board on the network does.
func startTCP(t *testing.T, opts emulator.Options) *device {
	d := newEmulator(t, opts)
	d.ListenTCP(t)
	d.dial = startTCPDialer(d.Addr)
	return d
}

func startTCPDialer(addr string) func(t *testing.T) protocol.Link {
	return func(t *testing.T) protocol.Link {
		link, err := transport.Dial(context.Background(), "ws://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { link.Close() })
		return link
	}
}

// startPty serves WebREPL framing on a pseudo-terminal; clients open its
// other side with the serial transport, as they open a UART.
func startPty(t *testing.T, opts emulator.Options) *device {
	d := newEmulator(t, opts)
	p, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	serve(t, func(ctx context.Context) { d.Emu.ServeStream(ctx, p) })
	d.dial = func(t *testing.T) protocol.Link {
		link, err := transport.Dial(context.Background(), "serial://"+p.Name+"?framing=ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { link.Close() })
		return link
	}
	return d
}

// login logs in, trying again while the device still holds the session of
// an earlier client (firmware answers a second client with a handshake and
// then closes the connection, until it notices the first one has gone).
func login(t *testing.T, d *device, pw string) *protocol.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		link := d.dial(t)
		c, err := protocol.Login(ctx, link, pw, nil)
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		link.Close()
		if errors.Is(err, protocol.ErrAccessDenied) || ctx.Err() != nil {
			t.Fatalf("login: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func everyByte(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestSessionOverEveryLink(t *testing.T) {
	for _, l := range links {
		t.Run(l.name, func(t *testing.T) {
			leakcheck.Check(t)
			d := l.start(t, emulator.Options{Version: protocol.Version{Major: 1, Minor: 19, Micro: 1}})
			c := login(t, d, password)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			v, err := c.Version(ctx)
			if err != nil {
				t.Fatalf("version: %v", err)
			}
			if got := v.String(); got != "1.19.1" {
				t.Errorf("version %s, want 1.19.1", got)
			}

			for _, size := range []int{0, 1, 256, 1023, 1024, 1025, 70000} {
				data := everyByte(size)
				name := fmt.Sprintf("/f%d.bin", size)
				if err := c.Put(ctx, name, bytes.NewReader(data), int64(size), nil); err != nil {
					t.Fatalf("put %d bytes: %v", size, err)
				}
				onDisk, err := os.ReadFile(filepath.Join(d.Dir, name))
				if err != nil || !bytes.Equal(onDisk, data) {
					t.Fatalf("put %d bytes: device file has %d bytes (err %v)", size, len(onDisk), err)
				}
				var back bytes.Buffer
				n, err := c.Get(ctx, name, &back, nil)
				if err != nil {
					t.Fatalf("get %d bytes: %v", size, err)
				}
				if n != int64(size) || !bytes.Equal(back.Bytes(), data) {
					t.Fatalf("get %d bytes: got %d bytes back, content equal: %v", size, back.Len(), bytes.Equal(back.Bytes(), data))
				}
			}
		})
	}
}

func TestWrongPasswordOverEveryLink(t *testing.T) {
	for _, l := range links {
		t.Run(l.name, func(t *testing.T) {
			leakcheck.Check(t)
			d := l.start(t, emulator.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			link := d.dial(t)
			_, err := protocol.Login(ctx, link, "wrong", nil)
			if !errors.Is(err, protocol.ErrAccessDenied) {
				t.Fatalf("login with a wrong password: %v, want ErrAccessDenied", err)
			}
			link.Close()
			// The device keeps serving: the right password works next.
			login(t, d, password)
		})
	}
}

func TestTerminalReachesShell(t *testing.T) {
	for _, l := range links {
		t.Run(l.name, func(t *testing.T) {
			leakcheck.Check(t)
			// cat on a cooked terminal echoes what is typed and prints each
			// line again after Enter.
			d := l.start(t, emulator.Options{Shell: []string{"cat"}})
			c := login(t, d, password)
			if _, err := c.Write([]byte("hello-from-" + l.name + "\r")); err != nil {
				t.Fatal(err)
			}
			want := "hello-from-" + l.name
			readUntil(t, c, func(out string) bool { return strings.Count(out, want) >= 2 })
		})
	}
}

func readUntil(t *testing.T, r io.Reader, done func(string) bool) string {
	t.Helper()
	var out bytes.Buffer
	buf := make([]byte, 1024)
	timer := time.AfterFunc(10*time.Second, func() {
		if c, ok := r.(io.Closer); ok {
			c.Close()
		}
	})
	defer timer.Stop()
	for !done(out.String()) {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("terminal: %v; output so far %q", err, out.String())
		}
	}
	return out.String()
}

func TestMissingFile(t *testing.T) {
	for _, l := range links {
		t.Run(l.name+"/faithful", func(t *testing.T) {
			leakcheck.Check(t)
			d := l.start(t, emulator.Options{})
			c := login(t, d, password)
			_, err := c.Get(context.Background(), "/missing.txt", io.Discard, nil)
			if err == nil {
				t.Fatal("get of a missing file succeeded")
			}
			if !strings.Contains(err.Error(), "closed") {
				t.Errorf("error %q does not say the device closed the connection", err)
			}
			// Like firmware, the device is free for the next client.
			c2 := login(t, d, password)
			if _, err := c2.Version(context.Background()); err != nil {
				t.Fatalf("version after a dropped session: %v", err)
			}
		})
		t.Run(l.name+"/extended", func(t *testing.T) {
			leakcheck.Check(t)
			d := l.start(t, emulator.Options{Extended: true})
			c := login(t, d, password)
			_, err := c.Get(context.Background(), "/missing.txt", io.Discard, nil)
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("get of a missing file: %v, want an error matching fs.ErrNotExist", err)
			}
			var se *protocol.StatusError
			if !errors.As(err, &se) || se.Code != 2 {
				t.Fatalf("get of a missing file: %v, want a StatusError with ENOENT (2)", err)
			}
			// The session stays up.
			if err := c.Put(context.Background(), "/ok.txt", strings.NewReader("ok"), 2, nil); err != nil {
				t.Fatalf("put after the error: %v", err)
			}
		})
	}
}

// TestPathEscapeRefused tries to write outside the served directory.
func TestPathEscapeRefused(t *testing.T) {
	leakcheck.Check(t)
	d := startTCP(t, emulator.Options{Extended: true})
	outside := filepath.Join(filepath.Dir(d.Dir), "escaped.txt")
	c := login(t, d, password)
	for _, name := range []string{"../escaped.txt", "/../escaped.txt", "a/../../escaped.txt"} {
		err := c.Put(context.Background(), name, strings.NewReader("x"), 1, nil)
		if err == nil {
			t.Errorf("put %q succeeded", name)
		}
		if _, err := os.Stat(outside); err == nil {
			t.Fatalf("put %q wrote %s outside the device directory", name, outside)
		}
	}
}

// TestClientVanishesMidPut drops the TCP connection half-way through a PUT:
// no file and no temporary file may be left, and the device keeps serving.
func TestClientVanishesMidPut(t *testing.T) {
	leakcheck.Check(t)
	d := startTCP(t, emulator.Options{})
	c := login(t, d, password)
	data := make([]byte, 10000)
	rand.Read(data)
	r := &failingReader{data: data[:5000]}
	err := c.Put(context.Background(), "/half.bin", r, int64(len(data)), nil)
	if err == nil {
		t.Fatal("put with a source that fails half-way succeeded")
	}
	c.Close()
	// The device frees the slot once it sees the connection gone; the next
	// login proves the session ended.
	c2 := login(t, d, password)
	if _, err := c2.Version(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind on the device: %s", e.Name())
	}
}

type failingReader struct{ data []byte }

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errors.New("source failed")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}
