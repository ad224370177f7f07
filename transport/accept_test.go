package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// h1 is the reference CLI's request, webrepl.md §6.0 H1 (109 bytes).
const h1 = "GET / HTTP/1.1\r\nHost: echo.websocket.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: foo\r\n\r\n"

// h2 is the answer to it, §6.0 H2.
const h2 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: BM0S0+ghftShuFVHQATK/DBiJq8=\r\n\r\n"

type acceptCase struct {
	name        string
	req         string
	checkOrigin bool   // refuse every Origin but http://allowed
	want        string // the exact answer for 101, else its status line
	wantErr     error  // for failures, besides the *HandshakeError
}

func acceptCases() []acceptCase {
	browser := "GET /webrepl HTTP/1.1\r\nHost: 192.168.4.1:8266\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://allowed\r\n\r\n"
	rfcAnswer := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
	return []acceptCase{
		{name: "reference cli (6.0 H1)", req: h1, want: h2},
		{name: "browser (RFC 6455 1.3 key)", req: browser, want: rfcAnswer},
		{name: "browser, origin allowed", req: browser, checkOrigin: true, want: rfcAnswer},
		{name: "firefox connection list", req: strings.Replace(browser, "Connection: Upgrade", "Connection: keep-alive, Upgrade", 1), want: rfcAnswer},
		{name: "header case and value case", req: "GET /x?y HTTP/1.1\r\nhost: h\r\nCONNECTION: UPGRADE\r\nupgrade: WebSocket\r\nsec-websocket-key: foo\r\n\r\n", want: h2},
		{name: "no host", req: "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: foo\r\n\r\n", want: h2},
		{name: "origin refused", req: strings.Replace(browser, "http://allowed", "http://evil.example", 1), checkOrigin: true,
			want: "HTTP/1.1 403 Forbidden\r\n"},
		{name: "plain GET", req: "GET / HTTP/1.1\r\nHost: 192.168.4.1\r\n\r\n", want: "HTTP/1.1 400 Bad Request\r\n", wantErr: ErrNotWebSocket},
		{name: "POST", req: strings.Replace(h1, "GET", "POST", 1), want: "HTTP/1.1 400 Bad Request\r\n", wantErr: ErrNotWebSocket},
		{name: "no key", req: strings.Replace(h1, "Sec-WebSocket-Key: foo\r\n", "", 1), want: "HTTP/1.1 400 Bad Request\r\n", wantErr: ErrNotWebSocket},
		{name: "empty key", req: strings.Replace(h1, "foo", "", 1), want: "HTTP/1.1 400 Bad Request\r\n", wantErr: ErrNotWebSocket},
		{name: "no upgrade token", req: strings.Replace(h1, "Connection: Upgrade", "Connection: keep-alive", 1), want: "HTTP/1.1 400 Bad Request\r\n", wantErr: ErrNotWebSocket},
		{name: "upgrade to something else", req: strings.Replace(h1, "Upgrade: websocket", "Upgrade: h2c", 1), want: "HTTP/1.1 400 Bad Request\r\n", wantErr: ErrNotWebSocket},
		{name: "version 8", req: strings.Replace(browser, "Version: 13", "Version: 8", 1), want: "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"},
		{name: "tls hello", req: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", want: "HTTP/1.1 400 Bad Request\r\n", wantErr: ErrNotWebSocket},
		{name: "garbage line", req: "hello there\r\n\r\n", want: "HTTP/1.1 400 Bad Request\r\n", wantErr: ErrNotWebSocket},
		{name: "bad header line", req: "GET / HTTP/1.1\r\nno colon here\r\n\r\n", want: "HTTP/1.1 400 Bad Request\r\n", wantErr: ErrNotWebSocket},
		{name: "one huge header", req: "GET / HTTP/1.1\r\nX-A: " + strings.Repeat("a", 20000) + "\r\n\r\n", want: "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
		{name: "header flood", req: "GET / HTTP/1.1\r\n" + strings.Repeat("X-N: v\r\n", 3000) + "\r\n", want: "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
	}
}

// handshake runs Accept on one end of a net.Pipe while the other end sends
// req and collects the answer (up to the end of the 101 answer, or until
// the server closes). The client end is returned for more traffic.
func handshake(t *testing.T, ctx context.Context, opts *AcceptOptions, req string) (c *Conn, err error, answer string, client net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	goAsync(t, func() error { _, err := io.WriteString(a, req); return err }, a, b)
	answerCh := make(chan string, 1)
	goAsync(t, func() error {
		var got []byte
		buf := make([]byte, 1)
		for {
			n, err := a.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil || bytes.HasPrefix(got, []byte("HTTP/1.1 101")) && bytes.HasSuffix(got, []byte("\r\n\r\n")) {
				answerCh <- string(got)
				return nil
			}
		}
	}, a, b)
	c, err = Accept(ctx, b, opts)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	select {
	case answer = <-answerCh:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
	}
	return c, err, answer, a
}

func originAllowed(r *http.Request) bool { return r.Header.Get("Origin") == "http://allowed" }

func TestAcceptRequests(t *testing.T) {
	for _, tc := range acceptCases() {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			opts := &AcceptOptions{Logf: t.Logf}
			if tc.checkOrigin {
				opts.CheckOrigin = originAllowed
			}
			c, err, answer, _ := handshake(t, bg(), opts, tc.req)
			if strings.HasPrefix(tc.want, "HTTP/1.1 101") {
				if err != nil {
					t.Fatalf("Accept: %v", err)
				}
				if answer != tc.want {
					t.Errorf("answer %q, want %q", answer, tc.want)
				}
				if c.Role() != Server {
					t.Errorf("role %v", c.Role())
				}
				return
			}
			if c != nil || err == nil {
				t.Fatalf("got a Conn (%v), want an error", err)
			}
			if !strings.HasPrefix(answer, tc.want) {
				t.Errorf("answer %q, want it to start with %q", answer, tc.want)
			}
			if strings.Contains(tc.want, "400") && !strings.Contains(answer, "WebREPL") {
				t.Errorf("400 answer does not say what this is: %q", answer)
			}
			var he *HandshakeError
			if !errors.As(err, &he) || !strings.HasPrefix(tc.want, "HTTP/1.1 "+strconv.Itoa(he.Status)) {
				t.Errorf("got %#v, want a *HandshakeError with the status answered", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("got %v, want it to wrap %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && errors.Is(err, ErrNotWebSocket) {
				t.Errorf("%v wraps ErrNotWebSocket", err)
			}
			if !strings.HasPrefix(err.Error(), "webrepl: handshake") {
				t.Errorf("error %q", err)
			}
			t.Log(err)
		})
	}
}

// TestAcceptKeepsEarlyBytes: the CLI writes its password frame right
// behind its request; those bytes must reach the first ReadMessage.
func TestAcceptKeepsEarlyBytes(t *testing.T) {
	leakCheck(t)
	c, err, answer, client := handshake(t, bg(), nil, h1+"\x82\x07secret\r")
	if err != nil {
		t.Fatal(err)
	}
	if answer != h2 {
		t.Fatalf("answer %q", answer)
	}
	if bin, p, err := c.ReadMessage(bg()); err != nil || !bin || string(p) != "secret\r" {
		t.Fatalf("got %v %q %v", bin, p, err)
	}
	// And the prompt goes out as the device sends it (§6.1 L1).
	got := make([]byte, 12)
	read := goAsync(t, func() error { _, err := io.ReadFull(client, got); return err }, client)
	if err := c.WriteMessage(bg(), false, []byte("Password: ")); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, read); err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "81 0a 50 61 73 73 77 6f 72 64 3a 20"); !bytes.Equal(got, want) {
		t.Errorf("got % x, want % x", got, want)
	}
}

func TestAcceptStalls(t *testing.T) {
	partial := "GET / HTTP/1.1\r\nHost: x\r\n"
	t.Run("timeout", func(t *testing.T) {
		leakCheck(t)
		start := time.Now()
		_, err, answer, _ := handshake(t, bg(), &AcceptOptions{HandshakeTimeout: 50 * time.Millisecond}, partial)
		var he *HandshakeError
		if !errors.As(err, &he) || he.Status != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a timeout *HandshakeError", err)
		}
		if answer != "" {
			t.Errorf("answered %q", answer)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
		t.Log(err)
	})
	t.Run("context", func(t *testing.T) {
		leakCheck(t)
		ctx, cancel := context.WithTimeout(bg(), 30*time.Millisecond)
		defer cancel()
		_, err, _, _ := handshake(t, ctx, nil, partial)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("done context", func(t *testing.T) {
		leakCheck(t)
		ctx, cancel := context.WithCancel(bg())
		cancel()
		_, err, _, _ := handshake(t, ctx, nil, h1)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
	t.Run("peer vanishes", func(t *testing.T) {
		leakCheck(t)
		a, b := net.Pipe()
		done := goAsync(t, func() error {
			io.WriteString(a, partial)
			return a.Close()
		}, a, b)
		_, err := Accept(bg(), b, nil)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
		}
		recvErr(t, done)
		t.Log(err)
	})
}

// TestAcceptedConnHostileFrames: what a misbehaving client gets after a
// good handshake.
func TestAcceptedConnHostileFrames(t *testing.T) {
	t.Run("64-bit length", func(t *testing.T) {
		leakCheck(t)
		c, err, _, client := handshake(t, bg(), &AcceptOptions{MaxMessage: 1024}, h1)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4)
		read := goAsync(t, func() error { _, err := io.ReadFull(client, got); return err }, client)
		wrote := goAsync(t, func() error {
			_, err := client.Write(unhex(t, "82 ff 7f ff ff ff ff ff ff ff 01 02 03 04"))
			return err
		}, client)
		if _, _, err := c.ReadMessage(bg()); !errors.Is(err, ErrMessageTooBig) {
			t.Fatalf("got %v, want ErrMessageTooBig", err)
		}
		if err := recvErr(t, read); err != nil {
			t.Fatal(err)
		}
		if want := unhex(t, "88 02 03 f1"); !bytes.Equal(got, want) {
			t.Errorf("close frame % x, want % x", got, want)
		}
		recvErr(t, wrote)
	})
	t.Run("vanishes mid-frame", func(t *testing.T) {
		leakCheck(t)
		c, err, _, client := handshake(t, bg(), nil, h1)
		if err != nil {
			t.Fatal(err)
		}
		goAsync(t, func() error {
			client.Write(unhex(t, "82 05 01 02"))
			return client.Close()
		}, client)
		if _, _, err := c.ReadMessage(bg()); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
		}
	})
}

// FuzzHandshake feeds arbitrary request bytes to Accept over net.Pipe: no
// panics; either a Conn or a *HandshakeError, never both.
func FuzzHandshake(f *testing.F) {
	for _, tc := range acceptCases() {
		f.Add([]byte(tc.req))
	}
	f.Add([]byte(h1 + "\x82\x07secret\r"))
	f.Fuzz(func(t *testing.T, req []byte) {
		a, b := net.Pipe()
		defer a.Close()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			a.Write(req)
			a.Close() // the end of the request: Accept sees EOF, not a stall
		}()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			io.Copy(io.Discard, a)
		}()
		c, err := Accept(bg(), b, &AcceptOptions{HandshakeTimeout: 5 * time.Second, CheckOrigin: originAllowed})
		if (c == nil) == (err == nil) {
			t.Fatalf("Conn %v and error %v", c, err)
		}
		if c != nil {
			c.Close()
		} else {
			var he *HandshakeError
			if !errors.As(err, &he) || !strings.HasPrefix(err.Error(), "webrepl: ") {
				t.Fatalf("error %#v", err)
			}
		}
		b.Close()
		<-wrote
		<-drained
	})
}
