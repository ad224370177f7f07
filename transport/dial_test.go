package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listen returns a loopback listener closed at cleanup.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serveOne accepts one TCP connection, makes the handshake, sends the
// prompt right behind the 101 (as the device does), then echoes every
// message until the end. It reports the reason it stopped.
func serveOne(t *testing.T, ln net.Listener, opts *AcceptOptions) <-chan error {
	t.Helper()
	return serveOneWith(t, ln, opts, func(c *Conn, bin bool, p []byte) error {
		return c.WriteMessage(bg(), bin, p)
	})
}

// serveOneWith is serveOne with what to do for each message received.
func serveOneWith(t *testing.T, ln net.Listener, opts *AcceptOptions, each func(c *Conn, bin bool, p []byte) error) <-chan error {
	t.Helper()
	return goAsync(t, func() error {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		c, err := Accept(bg(), nc, opts)
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.WriteMessage(bg(), false, []byte("Password: ")); err != nil {
			return err
		}
		for {
			bin, p, err := c.ReadMessage(bg())
			if err != nil {
				return err
			}
			if err := each(c, bin, p); err != nil {
				return err
			}
		}
	}, ln)
}

// TestDialAccept: our own client (gobwas/ws's RFC 6455 handshake, masked
// frames) against Accept over loopback TCP, as a browser would connect.
func TestDialAccept(t *testing.T) {
	leakCheck(t)
	ln := listen(t)
	served := serveOne(t, ln, &AcceptOptions{CheckOrigin: originAllowed, Logf: t.Logf})
	c, err := Dial(bg(), "ws://"+ln.Addr().String()+"/", &DialOptions{
		Header: http.Header{"Origin": {"http://allowed"}},
		Logf:   t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// The prompt came right behind the 101: Dial must not lose it.
	if bin, p, err := c.ReadMessage(bg()); err != nil || bin || string(p) != "Password: " {
		t.Fatalf("got %v %q %v, want the prompt", bin, p, err)
	}
	for i, n := range []int{1, 125, 126, 1024, 65535, 65536, 100000} {
		bin := i%2 == 0
		p := bytes.Repeat([]byte{'a' + byte(i)}, n)
		if err := c.WriteMessage(bg(), bin, p); err != nil {
			t.Fatal(err)
		}
		gotBin, got, err := c.ReadMessage(bg())
		if err != nil || gotBin != bin || !bytes.Equal(got, p) {
			t.Fatalf("echo of %d bytes: got %v, %d bytes, %v", n, gotBin, len(got), err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, served); err != io.EOF {
		t.Errorf("server: got %v, want io.EOF after the client's close frame", err)
	}
}

func TestDialOriginRefused(t *testing.T) {
	leakCheck(t)
	ln := listen(t)
	served := serveOne(t, ln, &AcceptOptions{CheckOrigin: originAllowed})
	_, err := Dial(bg(), ln.Addr().String(), &DialOptions{Header: http.Header{"Origin": {"http://evil.example"}}})
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("got %v, want a 403 error", err)
	}
	var he *HandshakeError
	if err := recvErr(t, served); !errors.As(err, &he) || he.Status != http.StatusForbidden {
		t.Errorf("server: got %v, want a 403 *HandshakeError", err)
	}
}

// TestRawCLIClient speaks to Accept the way webrepl_cli.py does: its fixed
// request, unmasked frames, and then ping, masked ping and close.
func TestRawCLIClient(t *testing.T) {
	leakCheck(t)
	ln := listen(t)
	msgs := make(chan message, 10)
	served := serveOneWith(t, ln, nil, func(_ *Conn, bin bool, p []byte) error {
		msgs <- message{bin, string(p)}
		return nil
	})
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	expect := func(want []byte) {
		t.Helper()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(nc, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got % x, want % x", got, want)
		}
	}
	send := func(s string) {
		t.Helper()
		if _, err := nc.Write(unhex(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	io.WriteString(nc, h1)
	expect([]byte(h2))
	expect(unhex(t, "81 0a 50 61 73 73 77 6f 72 64 3a 20"))
	send("82 07 73 65 63 72 65 74 0d")
	if m := <-msgs; m != (message{true, "secret\r"}) {
		t.Errorf("server got %v", m)
	}
	send("89 04 61 62 63 64")
	expect(unhex(t, "8a 04 61 62 63 64"))
	send("89 84 37 fa 21 3d 56 98 42 59") // "abcd" masked with the RFC key
	expect(unhex(t, "8a 04 61 62 63 64"))
	send("88 80 01 02 03 04")
	expect(unhex(t, "88 00"))
	if err := recvErr(t, served); err != io.EOF {
		t.Errorf("server: got %v, want io.EOF", err)
	}
}

func TestDialErrors(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		leakCheck(t)
		ln := listen(t)
		addr := ln.Addr().String()
		ln.Close()
		_, err := Dial(bg(), addr, nil)
		if !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), addr) || !strings.HasPrefix(err.Error(), "webrepl: dial ws://") {
			t.Fatalf("got %v, want connection refused naming %s", err, addr)
		}
		t.Log(err)
	})
	t.Run("not a websocket server", func(t *testing.T) {
		leakCheck(t)
		ln := listen(t)
		done := goAsync(t, func() error {
			nc, err := ln.Accept()
			if err != nil {
				return err
			}
			defer nc.Close()
			buf := make([]byte, 4096)
			nc.Read(buf)
			_, err = io.WriteString(nc, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
			return err
		}, ln)
		_, err := Dial(bg(), "ws://"+ln.Addr().String()+"/nope", nil)
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("got %v, want a 404 error", err)
		}
		recvErr(t, done)
		t.Log(err)
	})
	t.Run("silent server", func(t *testing.T) {
		leakCheck(t)
		ln := listen(t)
		var held net.Conn
		done := goAsync(t, func() error {
			nc, err := ln.Accept()
			held = nc
			return err
		}, ln)
		_, err := Dial(bg(), ln.Addr().String(), &DialOptions{HandshakeTimeout: 50 * time.Millisecond})
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "within 50ms") {
			t.Fatalf("got %v, want a handshake timeout", err)
		}
		recvErr(t, done)
		if held != nil {
			held.Close()
		}
		t.Log(err)
	})
	t.Run("cancelled", func(t *testing.T) {
		leakCheck(t)
		ln := listen(t)
		ctx, cancel := context.WithTimeout(bg(), 30*time.Millisecond)
		defer cancel()
		_, err := Dial(ctx, ln.Addr().String(), nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		if _, err := Dial(bg(), "ftp://x", nil); err == nil || !strings.Contains(err.Error(), "scheme") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("serial without framing", func(t *testing.T) {
		for _, a := range []string{"serial:///dev/null", "serial:///dev/null?framing=raw"} {
			_, err := Dial(bg(), a, nil)
			if err == nil || !strings.Contains(err.Error(), "not supported by this command") {
				t.Errorf("%s: got %v", a, err)
			}
		}
	})
	t.Run("serial not found", func(t *testing.T) {
		_, err := Dial(bg(), "serial:///dev/no-such-tty?framing=ws", nil)
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("got %v, want os.ErrNotExist", err)
		}
		t.Log(err)
	})
}

// TestDialTLS: wss:// through crypto/tls to Accept.
func TestDialTLS(t *testing.T) {
	leakCheck(t)
	hs := httptest.NewUnstartedServer(nil)
	hs.StartTLS()
	cert := hs.TLS.Certificates[0]
	roots := x509.NewCertPool()
	roots.AddCert(hs.Certificate())
	hs.Close()

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	served := serveOne(t, ln, nil)
	c, err := Dial(bg(), "wss://"+ln.Addr().String()+"/", &DialOptions{TLSConfig: &tls.Config{RootCAs: roots}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, p, err := c.ReadMessage(bg()); err != nil || string(p) != "Password: " {
		t.Fatalf("got %q %v", p, err)
	}
	if err := c.WriteMessage(bg(), true, []byte("secret\r")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(bg()); err != nil || string(p) != "secret\r" {
		t.Fatalf("got %q %v", p, err)
	}
	c.Close()
	if err := recvErr(t, served); err != io.EOF {
		t.Errorf("server: %v", err)
	}
}

func TestDialIPv6(t *testing.T) {
	leakCheck(t)
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	t.Cleanup(func() { ln.Close() })
	served := serveOne(t, ln, nil)
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := Dial(bg(), "[::1]:"+strconv.Itoa(port), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(bg()); err != nil || string(p) != "Password: " {
		t.Fatalf("got %q %v", p, err)
	}
	c.Close()
	recvErr(t, served)
}
