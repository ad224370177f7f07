package protocol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"sync"
	"testing"
)

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		device     DeviceOptions
		password   string
		wantDenied bool
	}{
		{"right password", DeviceOptions{Password: "secret"}, "secret", false},
		{"wrong password", DeviceOptions{Password: "secret"}, "Secret", true},
		{"empty password", DeviceOptions{}, "", false},
		{"9 bytes, the device maximum", DeviceOptions{Password: "123456789"}, "123456789", false},
		// modwebrepl.c keeps 10 typed bytes, so a longer entry never matches.
		{"typed 12 bytes, 9 match", DeviceOptions{Password: "123456789"}, "123456789abc", true},
		{"extended, long password", DeviceOptions{Password: strings.Repeat("long ", 200), Extended: true}, strings.Repeat("long ", 200), false},
		{"extended, wrong", DeviceOptions{Password: strings.Repeat("p", 1024), Extended: true}, strings.Repeat("p", 1023) + "q", true},
		{"extended, prefix is not enough", DeviceOptions{Password: "secret", Extended: true}, "secre", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, dev := startDevice(t, &tt.device, nil)
			c, err := Login(testCtx(t), cl, tt.password, nil)
			if tt.wantDenied {
				if !errors.Is(err, ErrAccessDenied) {
					t.Fatalf("Login: err = %v, want ErrAccessDenied", err)
				}
				if c != nil {
					t.Error("a client came back with the error")
				}
				if err := dev.wait(t); !errors.Is(err, ErrAccessDenied) {
					t.Errorf("Serve = %v, want ErrAccessDenied", err)
				}
				if dev.d.LoggedIn() {
					t.Error("device says logged in")
				}
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			defer c.Close()
			if got := readTerminal(t, c, ">>> "); got != ">>> " {
				t.Errorf("terminal starts with %q, want %q (the banner's CRLF dropped)", got, ">>> ")
			}
			if !dev.d.LoggedIn() {
				t.Error("device says not logged in")
			}
			c.Close()
			if err := dev.wait(t); err != nil {
				t.Errorf("Serve after the client closed = %v, want nil", err)
			}
		})
	}
}

func TestLoginFailures(t *testing.T) {
	t.Run("closed before the prompt", func(t *testing.T) {
		cl, dl := memPair()
		dl.Close() // a device with another session active: 101, then close
		_, err := Login(testCtx(t), cl, "x", nil)
		if !errors.Is(err, ErrBusy) || errors.Is(err, ErrAccessDenied) {
			t.Errorf("err = %v, want a closed-before-prompt error", err)
		}
	})
	t.Run("closed after the password", func(t *testing.T) {
		cl, dl := memPair()
		send(t, dl, false, []byte("Password: "))
		errc := make(chan error, 1)
		go func() {
			_, err := Login(testCtx(t), cl, "x", nil)
			errc <- err
		}()
		expectMsg(t, dl, false, "x\r")
		dl.Close()
		if err := <-errc; !errors.Is(err, ErrAccessDenied) || !errors.Is(err, io.EOF) {
			t.Errorf("err = %v, want ErrAccessDenied wrapping io.EOF", err)
		}
	})
	t.Run("ctx deadline, no prompt", func(t *testing.T) {
		cl, dl := memPair()
		defer dl.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Login(ctx, cl, "x", nil)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if _, _, err := dl.ReadMessage(testCtx(t)); !errors.Is(err, io.EOF) {
			t.Errorf("the link is not closed: read = %v", err)
		}
	})
	t.Run("password with a line break", func(t *testing.T) {
		cl, dl := memPair()
		defer dl.Close()
		send(t, dl, false, []byte("Password: "))
		if _, err := Login(testCtx(t), cl, "a\rb", nil); err == nil {
			t.Error("no error")
		}
	})
	t.Run("bad options", func(t *testing.T) {
		cl, dl := memPair()
		defer dl.Close()
		if _, err := Login(testCtx(t), cl, "x", &ClientOptions{GetWindow: -1}); err == nil {
			t.Error("no error for GetWindow -1")
		}
	})
}

func TestNewDeviceRefuses(t *testing.T) {
	tests := []struct {
		name string
		opts DeviceOptions
	}{
		{"faithful 10-byte password", DeviceOptions{Password: "0123456789"}},
		{"faithful NUL", DeviceOptions{Password: "a\x00b"}},
		{"CR", DeviceOptions{Password: "a\rb", Extended: true}},
		{"LF", DeviceOptions{Password: "a\nb"}},
		{"extended 1025 bytes", DeviceOptions{Password: strings.Repeat("x", 1025), Extended: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, dl := memPair()
			if _, err := NewDevice(dl, &tt.opts); err == nil || !strings.HasPrefix(err.Error(), "webrepl: ") {
				t.Errorf("err = %v, want a webrepl: error", err)
			}
		})
	}
	_, dl := memPair()
	if _, err := NewDevice(dl, &DeviceOptions{Password: strings.Repeat("x", 1024), Extended: true}); err != nil {
		t.Errorf("extended 1024 bytes: %v", err)
	}
}

var roundTripSizes = []int{0, 1, 255, 256, 257, 1023, 1024, 1025, 100 << 10}

func TestPutGetRoundTrip(t *testing.T) {
	for _, extended := range []bool{false, true} {
		for _, size := range roundTripSizes {
			t.Run(fmt.Sprintf("extended=%v/size=%d", extended, size), func(t *testing.T) {
				s := newSession(t, &DeviceOptions{Password: "secret", Extended: extended}, nil)
				ctx := testCtx(t)
				data := pattern(size)
				var lastPut int64 = -1
				putCalls := 0
				if err := s.c.Put(ctx, "/data.bin", bytes.NewReader(data), int64(size), func(done int64) {
					lastPut = done
					putCalls++
				}); err != nil {
					t.Fatalf("Put: %v", err)
				}
				if wantCalls := (size + PutFrameSize - 1) / PutFrameSize; putCalls != wantCalls || (size > 0 && lastPut != int64(size)) {
					t.Errorf("put progress: %d calls, last %d; want %d calls, last %d", putCalls, lastPut, wantCalls, size)
				}
				if got, _ := s.fs.file("/data.bin"); !bytes.Equal(got, data) {
					t.Fatalf("the device stored %d bytes, want %d (or contents differ)", len(got), size)
				}
				// PUT data went in fixed 1024-byte frames after the one-frame header.
				var dataFrames []int
				for _, m := range s.tap.Sent() {
					if m.binary && len(m.p) != RequestSize {
						dataFrames = append(dataFrames, len(m.p))
					}
				}
				for i, n := range dataFrames {
					if i < len(dataFrames)-1 && n != PutFrameSize || n > PutFrameSize || n == 0 {
						t.Fatalf("PUT data frames %v, want %d bytes each but the last", dataFrames, PutFrameSize)
					}
				}
				var out bytes.Buffer
				var lastGet int64
				n, err := s.c.Get(ctx, "/data.bin", &out, func(done int64) { lastGet = done })
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if n != int64(size) || !bytes.Equal(out.Bytes(), data) {
					t.Fatalf("Get returned %d bytes, want %d (or contents differ)", n, size)
				}
				if lastGet != int64(size) {
					t.Errorf("get progress ended at %d, want %d", lastGet, size)
				}
				if v, err := s.c.Version(ctx); err != nil || v != defaultVersion {
					t.Errorf("Version after the transfers = %v, %v; want %v", v, err, defaultVersion)
				}
			})
		}
	}
}

// TestGetWindow runs a GET with each window and checks the acks the client
// sent and that the session is in step afterwards.
func TestGetWindow(t *testing.T) {
	const size = 1000 // chunks of 256, 256, 256, 232
	const chunks = 4
	tests := []struct{ window, eff int }{{1, 1}, {2, 2}, {3, 3}, {0, 3}, {4, 3}, {10, 3}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("window=%d", tt.window), func(t *testing.T) {
			data := pattern(size)
			mfs := newMemFS(map[string]string{"/f": string(data), "/test.txt": "0123456789"})
			s := newSession(t, &DeviceOptions{Password: "secret", FS: mfs}, &ClientOptions{GetWindow: tt.window})
			ctx := testCtx(t)
			var out bytes.Buffer
			if _, err := s.c.Get(ctx, "/f", &out, nil); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatal("contents differ")
			}
			acks, tail := 0, -1
			for _, m := range s.tap.Sent() {
				switch {
				case m.binary && len(m.p) == 1 && m.p[0] == 0:
					acks++
				case m.binary && len(m.p) != RequestSize:
					tail = len(m.p)
				}
			}
			if want := tt.eff + chunks; acks != want {
				t.Errorf("sent %d acks, want %d (window %d + one per chunk)", acks, want, tt.eff)
			}
			if wantTail := RequestSize - (tt.eff - 1); tt.eff > 1 && tail != wantTail {
				t.Errorf("GET_VER tail is %d bytes, want %d", tail, wantTail)
			} else if tt.eff == 1 && tail != -1 {
				t.Errorf("window 1 sent a %d-byte tail", tail)
			}
			// The session is in step: more operations work.
			if v, err := s.c.Version(ctx); err != nil || v != defaultVersion {
				t.Errorf("Version = %v, %v", v, err)
			}
			out.Reset()
			if _, err := s.c.Get(ctx, "/test.txt", &out, nil); err != nil || out.String() != "0123456789" {
				t.Errorf("second Get = %q, %v", out.String(), err)
			}
		})
	}
}

// TestDevicePipelinedAcks checks, on the device's side of the link, that a
// faithful device reads the two surplus acks plus the 80-byte tail as a
// GET_VER request, answers it, and still serves the next operation.
func TestDevicePipelinedAcks(t *testing.T) {
	data := pattern(600) // chunks of 256, 256, 88
	mfs := newMemFS(map[string]string{"/f": string(data)})
	var devTap *tapLink
	cl, dl := memPair()
	devTap = &tapLink{Link: dl}
	d, err := NewDevice(devTap, &DeviceOptions{Password: "pw", FS: mfs, Version: Version{1, 19, 1}})
	if err != nil {
		t.Fatal(err)
	}
	dev := &served{d: d, done: make(chan struct{})}
	go func() { defer close(dev.done); dev.err = d.Serve(context.Background()) }()
	c, err := Login(testCtx(t), cl, "pw", &ClientOptions{GetWindow: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var out bytes.Buffer
	if _, err := c.Get(ctx, "/f", &out, nil); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("Get: %v", err)
	}
	var recv, sent []int
	for _, m := range devTap.Received() {
		if m.binary {
			recv = append(recv, len(m.p))
		}
	}
	var lastSent []byte
	for _, m := range devTap.Sent() {
		if m.binary {
			sent = append(sent, len(m.p))
			lastSent = m.p
		}
	}
	// Header, 3 acks up front, one per data chunk (3), then the tail.
	if want := []int{82, 1, 1, 1, 1, 1, 1, 80}; fmt.Sprint(recv) != fmt.Sprint(want) {
		t.Errorf("device received binary messages %v, want %v", recv, want)
	}
	// WB, three chunks, the end chunk, WB, the version.
	if want := []int{4, 258, 258, 90, 2, 4, 3}; fmt.Sprint(sent) != fmt.Sprint(want) {
		t.Errorf("device sent binary messages %v, want %v", sent, want)
	}
	if !bytes.Equal(lastSent, []byte{1, 19, 1}) {
		t.Errorf("last message % x, want the version 01 13 01", lastSent)
	}
	if err := c.Put(ctx, "/g", strings.NewReader("next"), 4, nil); err != nil {
		t.Fatalf("Put after the pipelined GET: %v", err)
	}
	if got, _ := mfs.file("/g"); string(got) != "next" {
		t.Errorf("stored %q", got)
	}
	c.Close()
	if err := dev.wait(t); err != nil {
		t.Errorf("Serve = %v", err)
	}
}

func TestTerminal(t *testing.T) {
	t.Run("echo through Input", func(t *testing.T) {
		repl := &echoREPL{}
		cl, dev := startDevice(t, &DeviceOptions{Password: "pw", Input: repl}, func(d *Device) {
			repl.d = d
			// Before login output is discarded but reported written.
			if n, err := d.Write([]byte("early")); n != 5 || err != nil {
				t.Errorf("Write before login = %d, %v", n, err)
			}
		})
		c, err := Login(testCtx(t), cl, "pw", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if n, err := c.Write([]byte("print(1)\r")); n != 9 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if got := readTerminal(t, c, "print(1)\r"); got != ">>> print(1)\r" {
			t.Errorf("terminal %q, want %q", got, ">>> print(1)\r")
		}
		// Every byte value goes through the text channel as it is.
		all := pattern(256)
		if _, err := c.Write(all); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(all))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, all) {
			t.Errorf("binary terminal bytes: %v, equal=%v", err, bytes.Equal(got, all))
		}
		c.Close()
		if err := dev.wait(t); err != nil {
			t.Errorf("Serve = %v", err)
		}
		// The terminal is drained, and the link has ended.
		if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
			t.Errorf("Read after Close = %d, %v; want 0, io.EOF", n, err)
		}
		if _, err := dev.d.Write([]byte("late")); err == nil {
			t.Error("device Write after Serve: no error")
		}
	})
	t.Run("no REPL attached", func(t *testing.T) {
		s := newSession(t, &DeviceOptions{Password: "pw", Notice: "[none]"}, nil)
		readTerminal(t, s.c, ">>> ")
		// One notice per Enter: CR, LF, CRLF each count once.
		s.c.Write([]byte("a\rb\nc\r\nd"))
		s.c.Write([]byte("\r"))
		if got := readTerminal(t, s.c, strings.Repeat("[none]", 4)); got != strings.Repeat("[none]", 4) {
			t.Errorf("got %q", got)
		}
	})
	t.Run("default notice", func(t *testing.T) {
		s := newSession(t, &DeviceOptions{Password: "pw"}, nil)
		s.c.Write([]byte("help()\r"))
		readTerminal(t, s.c, DefaultNotice)
	})
	t.Run("oldest output dropped", func(t *testing.T) {
		repl := &echoREPL{}
		cl, _ := startDevice(t, &DeviceOptions{Password: "pw", Input: repl}, func(d *Device) { repl.d = d })
		c, err := Login(testCtx(t), cl, "pw", &ClientOptions{TerminalBuffer: 8})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("0123456789"))
		// A file op after the echo guarantees the echo has been buffered.
		if _, err := c.Version(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "23456789" {
			t.Errorf("Read = %q, %v; want the newest 8 bytes", buf[:n], err)
		}
	})
	t.Run("ReadContext deadline keeps the client", func(t *testing.T) {
		s := newSession(t, nil, nil)
		readTerminal(t, s.c, ">>> ")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := s.c.ReadContext(ctx, make([]byte, 1)); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
		if _, err := s.c.Version(testCtx(t)); err != nil {
			t.Errorf("Version after a cancelled terminal read: %v", err)
		}
	})
}

func TestDeviceWriteUTF8(t *testing.T) {
	var dev *Device
	cl, _ := startDevice(t, &DeviceOptions{Password: "pw"}, func(d *Device) { dev = d })
	tap := &tapLink{Link: cl}
	c, err := Login(testCtx(t), tap, "pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readTerminal(t, c, ">>> ")
	dev.Write([]byte("a\xc3"))         // é cut in half
	dev.Write([]byte("\xa9b\xff"))     // ... completed; a stray invalid byte stays
	long := strings.Repeat("€", 30000) // 90000 bytes, 3 per character
	dev.Write([]byte(long))
	want := "a\xc3\xa9b\xff" + long
	if got := readTerminal(t, c, long); got != want {
		t.Fatalf("terminal got %d bytes, want %d", len(got), len(want))
	}
	var texts []string
	for _, m := range tap.Received() {
		if !m.binary {
			texts = append(texts, string(m.p))
		}
	}
	// Prompt, banner, "a", "é b \xff", then the long output in two messages.
	if len(texts) != 6 || texts[2] != "a" || texts[3] != "\xc3\xa9b\xff" {
		t.Fatalf("%d messages %q...", len(texts), texts[:min(4, len(texts))])
	}
	for _, m := range texts[4:] {
		if len(m) > MaxMessageSize || !strings.HasPrefix(m, "€") || len(m)%3 != 0 {
			t.Errorf("a long-output message of %d bytes is cut inside a character or too long", len(m))
		}
	}
}

func TestFileErrorsFaithful(t *testing.T) {
	tests := []struct {
		name    string
		fs      FS
		op      func(context.Context, *Client) error
		wantDev error
	}{
		{"get missing", nil, func(ctx context.Context, c *Client) error {
			_, err := c.Get(ctx, "/missing.txt", io.Discard, nil)
			return err
		}, fs.ErrNotExist},
		{"put into a read-only place", nil, func(ctx context.Context, c *Client) error {
			return c.Put(ctx, "/ro/x", strings.NewReader("x"), 1, nil)
		}, fs.ErrPermission},
		{"no file system", noFS{}, func(ctx context.Context, c *Client) error {
			_, err := c.Get(ctx, "/test.txt", io.Discard, nil)
			return err
		}, errNoFS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := &DeviceOptions{Password: "pw"}
			if _, ok := tt.fs.(noFS); !ok {
				opts.FS = tt.fs
			}
			s := newSessionNoFS(t, opts, tt.fs == nil)
			err := tt.op(testCtx(t), s.c)
			if err == nil || !strings.Contains(err.Error(), "device closed the connection") || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("err = %v, want a device-closed error wrapping io.ErrUnexpectedEOF", err)
			}
			if !strings.HasPrefix(err.Error(), "webrepl: ") || strings.Count(err.Error(), "webrepl:") != 1 {
				t.Errorf("message %q: want one webrepl: prefix", err)
			}
			<-s.c.Done()
			derr := s.dev.wait(t)
			var oe *OpError
			if !errors.Is(derr, tt.wantDev) || !errors.As(derr, &oe) {
				t.Errorf("Serve = %v, want an *OpError matching %v", derr, tt.wantDev)
			}
			if _, err := s.c.Version(testCtx(t)); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("Version afterwards: %v", err)
			}
		})
	}
}

// noFS marks a test device without a file system.
type noFS struct{ FS }

// newSessionNoFS is newSession, but with withMem false it keeps opts.FS as
// it is (possibly nil).
func newSessionNoFS(t *testing.T, opts *DeviceOptions, withMem bool) *session {
	if withMem {
		return newSession(t, opts, nil)
	}
	cl, dev := startDevice(t, opts, nil)
	tap := &tapLink{Link: cl}
	c, err := Login(testCtx(t), tap, opts.Password, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &session{c: c, tap: tap, dev: dev}
}

func TestFileErrorsExtended(t *testing.T) {
	tests := []struct {
		name  string
		op    func(context.Context, *Client) error
		want  StatusError
		match error
	}{
		{"get missing", func(ctx context.Context, c *Client) error {
			_, err := c.Get(ctx, "/missing.txt", io.Discard, nil)
			return err
		}, StatusError{OpGet, "/missing.txt", ENOENT}, fs.ErrNotExist},
		{"get a directory", func(ctx context.Context, c *Client) error {
			_, err := c.Get(ctx, "/dir", io.Discard, nil)
			return err
		}, StatusError{OpGet, "/dir", EISDIR}, nil},
		{"put read-only", func(ctx context.Context, c *Client) error {
			return c.Put(ctx, "/ro/x", strings.NewReader("data"), 4, nil)
		}, StatusError{OpPut, "/ro/x", EACCES}, fs.ErrPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, &DeviceOptions{Password: "pw", Extended: true}, nil)
			ctx := testCtx(t)
			err := tt.op(ctx, s.c)
			var se *StatusError
			if !errors.As(err, &se) || *se != tt.want {
				t.Fatalf("err = %v, want %+v", err, tt.want)
			}
			if tt.match != nil && !errors.Is(err, tt.match) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.match)
			}
			// The session is still usable.
			var out bytes.Buffer
			if _, err := s.c.Get(ctx, "/test.txt", &out, nil); err != nil || out.String() != "0123456789" {
				t.Errorf("Get afterwards = %q, %v", out.String(), err)
			}
			if err := s.c.Put(ctx, "/new.txt", strings.NewReader("new"), 3, nil); err != nil {
				t.Errorf("Put afterwards: %v", err)
			}
		})
	}
	t.Run("no file system", func(t *testing.T) {
		s := newSessionNoFS(t, &DeviceOptions{Password: "pw", Extended: true}, false)
		err := s.c.Put(testCtx(t), "/x", strings.NewReader(""), 0, nil)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != ENODEV {
			t.Fatalf("err = %v, want status ENODEV", err)
		}
		if v, err := s.c.Version(testCtx(t)); err != nil || v != defaultVersion {
			t.Errorf("Version afterwards = %v, %v", v, err)
		}
	})
}

func TestClientRefusesBadRequests(t *testing.T) {
	s := newSession(t, nil, nil)
	ctx := testCtx(t)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"put 64-byte name", s.c.Put(ctx, strings.Repeat("n", 64), strings.NewReader(""), 0, nil), ErrNameTooLong},
		{"get invalid UTF-8", func() error { _, err := s.c.Get(ctx, "\xff", io.Discard, nil); return err }(), ErrBadName},
		{"get empty name", func() error { _, err := s.c.Get(ctx, "", io.Discard, nil); return err }(), ErrBadName},
		{"put NUL", s.c.Put(ctx, "a\x00", strings.NewReader(""), 0, nil), ErrBadName},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if err := s.c.Put(ctx, "/x", strings.NewReader(""), -1, nil); err == nil {
		t.Error("put size -1: no error")
	}
	if err := s.c.Put(ctx, "/x", strings.NewReader(""), 1<<32, nil); err == nil {
		t.Error("put size 2^32: no error")
	}
	// Nothing but the login went out.
	for _, m := range s.tap.Sent() {
		if m.binary {
			t.Errorf("sent binary message % x", m.p)
		}
	}
	if _, err := s.c.Version(ctx); err != nil {
		t.Errorf("Version: %v", err)
	}
}

func TestUnknownOp(t *testing.T) {
	req, _ := AppendRequest(nil, Request{Op: 9, Name: "/test.txt"})
	ver, _ := AppendRequest(nil, Request{Op: OpGetVersion})
	t.Run("faithful: WB 0, then stuck", func(t *testing.T) {
		cl, dev := startDevice(t, &DeviceOptions{Password: "pw", FS: newMemFS(map[string]string{"/test.txt": "x"})}, nil)
		rawLogin(t, cl, "pw")
		send(t, cl, true, req)
		expectMsg(t, cl, true, "WB\x00\x00")
		send(t, cl, true, ver)
		// The notice proves the device handled everything before it: no
		// version came back.
		send(t, cl, false, []byte("\r"))
		expectMsg(t, cl, false, DefaultNotice)
		cl.Close()
		if err := dev.wait(t); err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	t.Run("extended: WB EINVAL, then usable", func(t *testing.T) {
		cl, _ := startDevice(t, &DeviceOptions{Password: "pw", Extended: true}, nil)
		rawLogin(t, cl, "pw")
		send(t, cl, true, req)
		expectMsg(t, cl, true, "WB\x16\x00")
		send(t, cl, true, ver)
		expectMsg(t, cl, true, "\x01\x1b\x00")
	})
	t.Run("extended: name without NUL", func(t *testing.T) {
		cl, _ := startDevice(t, &DeviceOptions{Password: "pw", Extended: true}, nil)
		rawLogin(t, cl, "pw")
		bad := mustHex(t, "57 41 02 00  00*8  00*4  40 00  61*64")
		send(t, cl, true, bad)
		expectMsg(t, cl, true, "WB\x24\x00") // ENAMETOOLONG
		send(t, cl, true, ver)
		expectMsg(t, cl, true, "\x01\x1b\x00")
	})
}

// TestDeviceStreams checks that the device treats binary data as a stream:
// requests and data split and merged across messages as a client likes.
func TestDeviceStreams(t *testing.T) {
	mfs := newMemFS(nil)
	cl, _ := startDevice(t, &DeviceOptions{Password: "pw", FS: mfs}, nil)
	// Password and the first header bytes in one binary message.
	expectMsg(t, cl, false, passwordPrompt)
	put, _ := AppendRequest(nil, Request{Op: OpPut, Size: 5, Name: "/a"})
	ver, _ := AppendRequest(nil, Request{Op: OpGetVersion})
	send(t, cl, true, append([]byte("pw\r"), put[:1]...))
	expectMsg(t, cl, false, connectedBanner)
	for _, b := range put[1:] { // the rest one byte at a time
		send(t, cl, true, []byte{b})
	}
	expectMsg(t, cl, true, "WB\x00\x00")
	// The data, then a whole GET_VER request, in one message.
	send(t, cl, true, append([]byte("hello"), ver...))
	expectMsg(t, cl, true, "WB\x00\x00")
	expectMsg(t, cl, true, "\x01\x1b\x00")
	if got, _ := mfs.file("/a"); string(got) != "hello" {
		t.Errorf("stored %q", got)
	}
	// A zero-byte PUT gets both statuses back to back.
	empty, _ := AppendRequest(nil, Request{Op: OpPut, Name: "/empty"})
	send(t, cl, true, empty)
	expectMsg(t, cl, true, "WB\x00\x00")
	expectMsg(t, cl, true, "WB\x00\x00")
	if got, ok := mfs.file("/empty"); !ok || len(got) != 0 {
		t.Errorf("/empty: %q, %v", got, ok)
	}
}

func TestClientVanishesMidPut(t *testing.T) {
	dir := t.TempDir()
	dfs, err := DirFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer dfs.Close()
	cl, dev := startDevice(t, &DeviceOptions{Password: "pw", FS: dfs}, nil)
	rawLogin(t, cl, "pw")
	req, _ := AppendRequest(nil, Request{Op: OpPut, Size: 5000, Name: "/big.bin"})
	send(t, cl, true, req)
	expectMsg(t, cl, true, "WB\x00\x00")
	send(t, cl, true, pattern(1024))
	send(t, cl, false, []byte("\r")) // sync: the notice comes after the data is written
	expectMsg(t, cl, false, DefaultNotice)
	if names := dirNames(t, dir); len(names) != 1 || !strings.Contains(names[0], tempInfix) {
		t.Fatalf("during the PUT the directory holds %v, want one temporary file", names)
	}
	cl.Close()
	err = dev.wait(t)
	var oe *OpError
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.As(err, &oe) || oe.Op != OpPut {
		t.Errorf("Serve = %v, want a put error wrapping io.ErrUnexpectedEOF", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("after the interrupted PUT the directory holds %v", names)
	}
}

func TestPutSourceEndsEarly(t *testing.T) {
	mfs := newMemFS(nil)
	s := newSession(t, &DeviceOptions{Password: "pw", FS: mfs}, nil)
	err := s.c.Put(testCtx(t), "/short", io.LimitReader(bytes.NewReader(pattern(5000)), 2000), 5000, nil)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "after 1024 of 5000 bytes") {
		t.Fatalf("err = %v", err)
	}
	<-s.c.Done()
	if derr := s.dev.wait(t); !errors.Is(derr, io.ErrUnexpectedEOF) {
		t.Errorf("Serve = %v", derr)
	}
	if _, ok := mfs.file("/short"); ok {
		t.Error("a partial file was stored")
	}
	if pending, aborts := mfs.counts(); pending != 0 || aborts != 1 {
		t.Errorf("pending %d, aborts %d; want 0, 1", pending, aborts)
	}
}

func TestPutCancel(t *testing.T) {
	mfs := newMemFS(nil)
	s := newSession(t, &DeviceOptions{Password: "pw", FS: mfs}, nil)
	ctx, cancel := context.WithCancel(testCtx(t))
	err := s.c.Put(ctx, "/c", bytes.NewReader(pattern(10000)), 10000, func(done int64) {
		if done >= 2048 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	<-s.c.Done()
	if _, err := s.c.Version(testCtx(t)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Version after the cancel: %v, want net.ErrClosed", err)
	}
	s.dev.wait(t)
	if _, ok := mfs.file("/c"); ok {
		t.Error("a partial file was stored")
	}
}

// stallFS serves one file: 256 bytes, then a read that blocks until
// release is closed.
type stallFS struct {
	release chan struct{}
}

func (f stallFS) Open(string) (io.ReadCloser, error) {
	return io.NopCloser(io.MultiReader(bytes.NewReader(pattern(ChunkSize)), stallReader(f.release))), nil
}

func (stallFS) Create(string) (PendingFile, error) { return nil, fs.ErrPermission }

type stallReader chan struct{}

func (r stallReader) Read([]byte) (int, error) {
	<-r
	return 0, io.EOF
}

func TestGetCancel(t *testing.T) {
	release := make(chan struct{})
	cl, dev := startDevice(t, &DeviceOptions{Password: "pw", FS: stallFS{release}}, nil)
	c, err := Login(testCtx(t), cl, "pw", &ClientOptions{GetWindow: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(testCtx(t))
	got1 := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "/slow", io.Discard, func(int64) { once.Do(func() { close(got1) }) })
		errc <- err
	}()
	<-got1 // the first chunk is in; the device now stalls on its file
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get = %v, want context.Canceled", err)
	}
	<-c.Done()
	close(release)
	dev.wait(t)
}

func TestClientClose(t *testing.T) {
	s := newSession(t, nil, nil)
	readTerminal(t, s.c, ">>> ")
	if err := s.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-s.c.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if !errors.Is(s.c.Err(), net.ErrClosed) {
		t.Errorf("Err = %v", s.c.Err())
	}
	if _, err := s.c.Get(testCtx(t), "/test.txt", io.Discard, nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Get after Close = %v, want net.ErrClosed", err)
	}
	if _, err := s.c.Write([]byte("x")); err == nil {
		t.Error("Write after Close: no error")
	}
	if err := s.dev.wait(t); err != nil {
		t.Errorf("Serve = %v", err)
	}
}

// TestConcurrentUse runs file operations from several goroutines while the
// terminal is in use (for the race detector, and for the op lock).
func TestConcurrentUse(t *testing.T) {
	repl := &echoREPL{}
	mfs := newMemFS(map[string]string{"/big": string(pattern(50 << 10))})
	cl, _ := startDevice(t, &DeviceOptions{Password: "pw", FS: mfs, Input: repl}, func(d *Device) { repl.d = d })
	c, err := Login(testCtx(t), cl, "pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			var out bytes.Buffer
			if _, err := c.Get(ctx, "/big", &out, nil); err != nil || out.Len() != 50<<10 {
				t.Errorf("Get %d: %d bytes, %v", i, out.Len(), err)
			}
			name := fmt.Sprintf("/p%d", i)
			if err := c.Put(ctx, name, bytes.NewReader(pattern(3000)), 3000, nil); err != nil {
				t.Errorf("Put %s: %v", name, err)
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			if _, err := fmt.Fprintf(c, "line %d\r", i); err != nil {
				t.Errorf("terminal write: %v", err)
				return
			}
		}
	})
	readTerminal(t, c, "line 49\r")
	wg.Wait()
}

// TestUnaskedBinary checks that binary data nobody asked for fails the
// next operation instead of being misread as its answer.
func TestUnaskedBinary(t *testing.T) {
	cl, dl := memPair()
	defer dl.Close()
	send(t, dl, false, []byte("Password: "))
	errc := make(chan error, 1)
	var c *Client
	go func() {
		var err error
		c, err = Login(testCtx(t), cl, "pw", nil)
		errc <- err
	}()
	expectMsg(t, dl, false, "pw\r")
	send(t, dl, false, []byte(connectedBanner))
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send(t, dl, true, []byte("junk"))
	send(t, dl, false, []byte("sync"))
	readTerminal(t, c, "sync") // the junk is in the client's queue now
	if _, err := c.Version(testCtx(t)); !errors.Is(err, ErrProtocol) {
		t.Errorf("Version = %v, want ErrProtocol", err)
	}
	<-c.Done()

	// Too much of it ends the session by itself.
	cl2, dl2 := memPair()
	defer dl2.Close()
	send(t, dl2, false, []byte("Password: \r\nWebREPL connected\r\n>>> "))
	c2, err := Login(testCtx(t), cl2, "pw", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for range maxPendingBinary/MaxMessageSize + 2 {
		// The client may end the session before the last messages are
		// sent; then the link refuses them, which is fine.
		if err := dl2.WriteMessage(testCtx(t), true, make([]byte, MaxMessageSize)); err != nil {
			break
		}
	}
	<-c2.Done()
	if !errors.Is(c2.Err(), ErrProtocol) {
		t.Errorf("Err = %v, want ErrProtocol", c2.Err())
	}
}

// TestClientParsesSplitReplies checks that replies split or merged across
// messages still parse (the client reads binary data as a stream).
func TestClientParsesSplitReplies(t *testing.T) {
	cl, dl := memPair()
	defer dl.Close()
	send(t, dl, false, []byte("Pass"))
	send(t, dl, false, []byte("word:"))
	send(t, dl, false, []byte(" "))
	type result struct {
		c   *Client
		err error
	}
	rc := make(chan result, 1)
	go func() {
		c, err := Login(testCtx(t), cl, "pw", &ClientOptions{GetWindow: 1})
		rc <- result{c, err}
	}()
	expectMsg(t, dl, false, "pw\r")
	for _, b := range []byte("\r\nWebREPL connected\r\n>>> ") {
		send(t, dl, false, []byte{b})
	}
	r := <-rc
	if r.err != nil {
		t.Fatal(r.err)
	}
	c := r.c
	defer c.Close()
	got := make(chan string, 1)
	go func() {
		var out bytes.Buffer
		_, err := c.Get(testCtx(t), "/f", &out, nil)
		got <- fmt.Sprint(out.String(), " ", err)
	}()
	req, _ := AppendRequest(nil, Request{Op: OpGet, Name: "/f"})
	expectMsg(t, dl, true, string(req))
	send(t, dl, true, []byte("W"))
	send(t, dl, true, []byte("B\x00"))
	send(t, dl, true, []byte("\x00"))
	expectMsg(t, dl, true, "\x00")
	send(t, dl, true, []byte("\x03"))
	send(t, dl, true, []byte("\x00ab"))
	send(t, dl, true, []byte("c"))
	expectMsg(t, dl, true, "\x00")
	send(t, dl, true, []byte("\x00\x00WB\x00\x00")) // end chunk and status merged
	if g := <-got; g != "abc <nil>" {
		t.Errorf("Get = %q", g)
	}
	if got := readTerminal(t, c, ">>> "); got != ">>> " {
		t.Errorf("terminal %q", got)
	}
}

func TestServeTwice(t *testing.T) {
	cl, dev := startDevice(t, nil, nil)
	expectMsg(t, cl, false, passwordPrompt) // the first Serve runs
	if err := dev.d.Serve(context.Background()); err == nil {
		t.Error("second Serve: no error")
	}
	cl.Close()
}

func TestServeCancel(t *testing.T) {
	cl, dl := memPair()
	defer cl.Close()
	d, err := NewDevice(dl, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Serve(ctx) }()
	expectMsg(t, cl, false, passwordPrompt)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve = %v, want context.Canceled", err)
	}
	if _, _, err := cl.ReadMessage(testCtx(t)); !errors.Is(err, io.EOF) {
		t.Errorf("link not closed: %v", err)
	}
}
