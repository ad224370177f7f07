package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func TestRoundTripSizes(t *testing.T) {
	leakCheck(t)
	client, server := pipePair(t, nil, nil)
	sizes := []int{1, 125, 126, 127, 1000, 65535, 65536, 70000, 200000}
	done := goAsync(t, func() error {
		for i, n := range sizes {
			if err := client.WriteMessage(bg(), i%2 == 0, bytes.Repeat([]byte{'a' + byte(i)}, n)); err != nil {
				return err
			}
		}
		return nil
	}, server, client)
	for i, n := range sizes {
		bin, p, err := server.ReadMessage(bg())
		if err != nil {
			t.Fatal(err)
		}
		if bin != (i%2 == 0) || !bytes.Equal(p, bytes.Repeat([]byte{'a' + byte(i)}, n)) {
			t.Fatalf("message %d: got binary=%v, %d bytes; want binary=%v, %d bytes", i, bin, len(p), i%2 == 0, n)
		}
	}
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
	// And back: the server's text is valid UTF-8 already, so unchanged.
	done = goAsync(t, func() error { return server.WriteMessage(bg(), false, []byte("é€😀")) }, server, client)
	if bin, p, err := client.ReadMessage(bg()); err != nil || bin || string(p) != "é€😀" {
		t.Fatalf("got %v %q %v", bin, p, err)
	}
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestContextCancelsRead(t *testing.T) {
	leakCheck(t)
	client, server := pipePair(t, nil, nil)
	ctx, cancel := context.WithCancel(bg())
	done := goAsync(t, func() error {
		_, _, err := client.ReadMessage(ctx)
		return err
	}, server, client)
	cancel()
	if err := recvErr(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want an error wrapping context.Canceled", err)
	}
	// The stream is closed: the peer sees its end, later calls fail.
	if _, _, err := server.ReadMessage(bg()); err != io.EOF {
		t.Errorf("peer: got %v, want io.EOF", err)
	}
	if err := client.WriteMessage(bg(), true, []byte("x")); err == nil {
		t.Error("write after a cancelled read succeeded")
	}
}

func TestContextDeadlineRead(t *testing.T) {
	leakCheck(t)
	client, _ := pipePair(t, nil, nil)
	ctx, cancel := context.WithTimeout(bg(), 20*time.Millisecond)
	defer cancel()
	_, _, err := client.ReadMessage(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want an error wrapping context.DeadlineExceeded", err)
	}
}

func TestContextCancelsWrite(t *testing.T) {
	leakCheck(t)
	client, _ := pipePair(t, nil, nil) // nobody reads the server end
	ctx, cancel := context.WithTimeout(bg(), 20*time.Millisecond)
	defer cancel()
	err := client.WriteMessage(ctx, true, make([]byte, 100))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want an error wrapping context.DeadlineExceeded", err)
	}
}

func TestDoneContextClosesAtOnce(t *testing.T) {
	rw := newMemRW([]byte{0x82, 0x01, 0x07})
	c := NewConn(rw, nil, &Options{Role: Server})
	ctx, cancel := context.WithCancel(bg())
	cancel()
	if _, _, err := c.ReadMessage(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("read: got %v, want context.Canceled", err)
	}
	if !rw.isClosed() {
		t.Error("a done context did not close the stream")
	}
	if err := c.WriteMessage(ctx, true, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("write: got %v, want context.Canceled", err)
	}
}

func TestLiveContextLeavesConnAlone(t *testing.T) {
	rw := newMemRW(unhex(t, "82 01 07 82 01 08"))
	c := NewConn(rw, nil, &Options{Role: Server})
	ctx, cancel := context.WithCancel(bg())
	if _, p, err := c.ReadMessage(ctx); err != nil || string(p) != "\x07" {
		t.Fatalf("got %q, %v", p, err)
	}
	cancel() // after the call: must not matter
	if _, p, err := c.ReadMessage(bg()); err != nil || string(p) != "\x08" {
		t.Fatalf("got %q, %v", p, err)
	}
	if rw.isClosed() {
		t.Error("a context cancelled after the call closed the stream")
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	leakCheck(t)
	client, server := pipePair(t, nil, nil)
	done := goAsync(t, func() error {
		_, _, err := server.ReadMessage(bg())
		return err
	}, server, client)
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, done); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("got %v, want net.ErrClosed", err)
	}
	if err := server.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseUnblocksWrite(t *testing.T) {
	leakCheck(t)
	client, server := pipePair(t, nil, nil) // nobody reads the server end
	client.closeWait = 20 * time.Millisecond
	done := goAsync(t, func() error { return client.WriteMessage(bg(), true, make([]byte, 1000)) }, server, client)
	// Close cannot send its close frame while the write holds the lock; it
	// closes the stream, which ends the write.
	client.Close()
	if err := recvErr(t, done); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("got %v, want net.ErrClosed", err)
	}
}

// TestClientCloseSendsCloseFrame: the peer sees a close frame, hence
// io.EOF; a server Close sends nothing (the device sends nothing).
func TestClientCloseSendsCloseFrame(t *testing.T) {
	rw := newMemRW(nil)
	c := fixedKey(NewConn(rw, nil, nil), rfcKey)
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := rw.written(), unhex(t, "88 80 37 fa 21 3d"); !bytes.Equal(got, want) {
		t.Errorf("wrote % x, want % x", got, want)
	}
	if !rw.isClosed() {
		t.Error("stream not closed")
	}

	rw = newMemRW(nil)
	if err := NewConn(rw, nil, &Options{Role: Server}).Close(); err != nil {
		t.Fatal(err)
	}
	if got := rw.written(); len(got) != 0 {
		t.Errorf("server Close wrote % x", got)
	}
}

// blockingRW is a stream whose writes block until it is closed, and which
// has no write deadline: Close must still return, in closeWait.
type blockingRW struct {
	closed chan struct{}
	once   chan struct{}
}

func (b *blockingRW) Read(p []byte) (int, error)  { <-b.closed; return 0, net.ErrClosed }
func (b *blockingRW) Write(p []byte) (int, error) { <-b.closed; return 0, net.ErrClosed }
func (b *blockingRW) Close() error {
	select {
	case b.once <- struct{}{}:
		close(b.closed)
	default:
	}
	return nil
}

func TestCloseBoundedWithoutDeadline(t *testing.T) {
	leakCheck(t)
	rw := &blockingRW{closed: make(chan struct{}), once: make(chan struct{}, 1)}
	c := NewConn(rw, nil, nil)
	c.closeWait = 20 * time.Millisecond
	done := goAsync(t, c.Close)
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestCloseBoundedWithDeadline(t *testing.T) {
	leakCheck(t)
	client, _ := pipePair(t, nil, nil) // nobody reads: the close frame cannot go out
	client.closeWait = 20 * time.Millisecond
	done := goAsync(t, client.Close)
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
}

// TestStreamReuse: a server-role Conn on a byte stream answers a close
// with 88 00 and returns io.EOF without closing the stream; a new Conn on
// the same stream and reader carries on after the close frame.
func TestStreamReuse(t *testing.T) {
	rw := newMemRW(unhex(t, "82 01 01 88 80 01 02 03 04 82 01 02"))
	br := bufio.NewReader(rw)
	first := NewConn(rw, br, &Options{Role: Server})
	if _, p, err := first.ReadMessage(bg()); err != nil || string(p) != "\x01" {
		t.Fatalf("got %q, %v", p, err)
	}
	if _, _, err := first.ReadMessage(bg()); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
	if rw.isClosed() {
		t.Fatal("the close frame closed the stream")
	}
	second := NewConn(rw, br, &Options{Role: Server})
	if err := second.WriteMessage(bg(), false, []byte("Password: ")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := second.ReadMessage(bg()); err != nil || string(p) != "\x02" {
		t.Fatalf("got %q, %v", p, err)
	}
	want := unhex(t, "88 00 81 0a 50 61 73 73 77 6f 72 64 3a 20")
	if got := rw.written(); !bytes.Equal(got, want) {
		t.Errorf("wrote % x, want % x", got, want)
	}
}

// TestSyncOverPipe: Dial's synchronisation on a byte stream, over
// net.Pipe, against a server that starts a session after each close.
func TestSyncOverPipe(t *testing.T) {
	leakCheck(t)
	a, b := net.Pipe()
	client := NewConn(a, nil, &Options{Role: Client, Logf: t.Logf})
	served := goAsync(t, func() error { return emulate(b, bufio.NewReader(b)) }, a, b)
	if err := client.syncStream(bg(), 5*time.Second, syncResend); err != nil {
		t.Fatal(err)
	}
	if bin, p, err := client.ReadMessage(bg()); err != nil || bin || string(p) != "Password: " {
		t.Fatalf("got %v %q %v, want the prompt", bin, p, err)
	}
	if err := client.WriteMessage(bg(), true, []byte("secret\r")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := client.ReadMessage(bg()); err != nil || string(p) != "\r\nWebREPL connected\r\n>>> " {
		t.Fatalf("got %q %v", p, err)
	}
	client.Close()
	b.Close()
	if err := recvErr(t, served); !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrClosedPipe) && err != io.EOF {
		t.Errorf("emulator: %v", err)
	}
}

func TestSyncTimeout(t *testing.T) {
	leakCheck(t)
	a, b := net.Pipe()
	t.Cleanup(func() { b.Close() })
	// The peer reads but never answers.
	drained := goAsync(t, func() error { _, err := io.Copy(io.Discard, b); return err }, b)
	client := NewConn(a, nil, nil)
	start := time.Now()
	err := client.syncStream(bg(), 100*time.Millisecond, 20*time.Millisecond)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	b.Close()
	recvErr(t, drained)
}

// emulate plays a minimal device on a byte stream: each session sends the
// prompt, answers the password, and ends at a close frame; then the next
// session starts on the same stream.
func emulate(rw io.ReadWriteCloser, br *bufio.Reader) error {
	for {
		s := NewConn(rw, br, &Options{Role: Server})
		if err := s.WriteMessage(bg(), false, []byte("Password: ")); err != nil {
			return err
		}
		for {
			bin, p, err := s.ReadMessage(bg())
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if bin && string(p) == "secret\r" {
				if err := s.WriteMessage(bg(), false, []byte("\r\nWebREPL connected\r\n>>> ")); err != nil {
					return err
				}
			}
		}
	}
}

// TestSyncCloseTagged: a server echoes the payload of a synchronising close
// (and answers any other close with 88 00, as firmware does); a client
// ignores a late answer carrying its own tag but ends at any other close.
func TestSyncCloseTagged(t *testing.T) {
	body := append([]byte{0x03, 0xe8}, syncPrefix+"0011223344556677"...)
	frame := append([]byte{0x88, byte(len(body))}, body...)

	rw := newMemRW(frame)
	server := NewConn(rw, nil, &Options{Role: Server})
	if _, _, err := server.ReadMessage(bg()); err != io.EOF {
		t.Fatalf("server: got %v, want io.EOF", err)
	}
	if got := rw.written(); !bytes.Equal(got, frame) {
		t.Errorf("server answered % x, want its payload back: % x", got, frame)
	}

	// The client's own tag, then a text message, then a plain close.
	in := append(append(append([]byte{}, frame...), unhex(t, "81 02 68 69")...), unhex(t, "88 00")...)
	crw := newMemRW(in)
	client := NewConn(crw, nil, &Options{Role: Client})
	client.syncBody = body
	if bin, p, err := client.ReadMessage(bg()); err != nil || bin || string(p) != "hi" {
		t.Fatalf("client: got %v %q %v, want the text after the late answer", bin, p, err)
	}
	if _, _, err := client.ReadMessage(bg()); err != io.EOF {
		t.Fatalf("client: got %v, want io.EOF at the plain close", err)
	}
}

// TestServerWritesOverTCP: on a TCP connection a server frame goes out in
// one writev (header and payload uncopied); every size arrives whole.
func TestServerWritesOverTCP(t *testing.T) {
	leakCheck(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("no connection accepted")
	}
	server := NewConn(sc, nil, &Options{Role: Server})
	client := NewConn(cc, nil, &Options{Role: Client})
	defer server.Close()
	defer client.Close()
	sizes := []int{1, 125, 126, 65535, 65536, 200000} // empty messages are skipped by ReadMessage
	done := goAsync(t, func() error {
		for i, n := range sizes {
			if err := server.WriteMessage(bg(), true, bytes.Repeat([]byte{'a' + byte(i)}, n)); err != nil {
				return err
			}
		}
		return nil
	}, server, client)
	for i, n := range sizes {
		bin, p, err := client.ReadMessage(bg())
		if err != nil {
			t.Fatal(err)
		}
		if !bin || !bytes.Equal(p, bytes.Repeat([]byte{'a' + byte(i)}, n)) {
			t.Fatalf("message %d: got binary=%v, %d bytes; want %d bytes", i, bin, len(p), n)
		}
	}
	if err := recvErr(t, done); err != nil {
		t.Fatal(err)
	}
}
