package bridge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"webrepl/bridge"
	"webrepl/internal/leakcheck"
	"webrepl/protocol"
	"webrepl/transport"
)

// cliConn speaks on the wire exactly as webrepl_cli.py does: its fixed
// handshake (key "foo", no version), unmasked frames, the password in a
// binary frame, a PUT header split 10 + 72, and text frames skipped while
// it waits for a binary one.
type cliConn struct {
	tb testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialCLI(tb testing.TB, addr string) *cliConn {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: echo.websocket.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: foo\r\n\r\n")
	w := &cliConn{tb: tb, c: c, br: bufio.NewReader(c)}
	want := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: BM0S0+ghftShuFVHQATK/DBiJq8=\r\n\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(w.br, got); err != nil || string(got) != want {
		tb.Fatalf("handshake answer %q (%v), want %q", got, err, want)
	}
	return w
}

// frame reads one frame.
func (w *cliConn) frame() (op byte, payload []byte) {
	w.tb.Helper()
	var h [2]byte
	if _, err := io.ReadFull(w.br, h[:]); err != nil {
		w.tb.Fatalf("reading a frame: %v", err)
	}
	if h[1]&0x80 != 0 {
		w.tb.Fatalf("the server masked a frame: % x", h)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		io.ReadFull(w.br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		io.ReadFull(w.br, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(w.br, payload); err != nil {
		w.tb.Fatalf("reading a frame's payload: %v", err)
	}
	return h[0], payload
}

// text reads text frames until their joined payloads contain want.
func (w *cliConn) text(want string) string {
	w.tb.Helper()
	var got []byte
	for !bytes.Contains(got, []byte(want)) {
		op, p := w.frame()
		if op == 0x81 {
			got = append(got, p...)
		}
	}
	return string(got)
}

// binary reads frames, skipping text ones, until a binary one comes.
func (w *cliConn) binary() []byte {
	w.tb.Helper()
	for {
		op, p := w.frame()
		if op == 0x82 {
			return p
		}
		if op != 0x81 {
			w.tb.Fatalf("unexpected frame %#x % x", op, p)
		}
	}
}

// send writes an unmasked frame, as webrepl_cli.py does.
func (w *cliConn) send(op byte, p []byte) {
	w.tb.Helper()
	if len(p) > 125 {
		w.tb.Fatalf("frame too long for this client: %d", len(p))
	}
	if _, err := w.c.Write(append([]byte{op, byte(len(p))}, p...)); err != nil {
		w.tb.Fatal(err)
	}
}

func request(op byte, size uint32, name string) []byte {
	r := make([]byte, 82)
	copy(r, "WA")
	r[2] = op
	binary.LittleEndian.PutUint32(r[12:], size)
	binary.LittleEndian.PutUint16(r[16:], uint16(len(name)))
	copy(r[18:], name)
	return r
}

func TestReferenceClientOnTheWire(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	w := dialCLI(t, br.Addr)
	if op, p := w.frame(); op != 0x81 || string(p) != "Password: " {
		t.Fatalf("first frame %#x %q, want the password prompt", op, p)
	}
	w.send(0x82, []byte(testPassword+"\r"))
	w.text("\r\nWebREPL connected\r\n>>> ")

	// PUT, with the header split as the reference client splits it.
	content := []byte("print('from the reference client')\n")
	req := request(1, uint32(len(content)), "/ref.py")
	w.send(0x82, req[:10])
	w.send(0x82, req[10:])
	if p := w.binary(); !bytes.Equal(p, []byte("WB\x00\x00")) {
		t.Fatalf("PUT answer % x", p)
	}
	w.send(0x82, content)
	if p := w.binary(); !bytes.Equal(p, []byte("WB\x00\x00")) {
		t.Fatalf("PUT status % x", p)
	}

	// GET it back, one ack per chunk.
	w.send(0x82, request(2, 0, "/ref.py"))
	if p := w.binary(); !bytes.Equal(p, []byte("WB\x00\x00")) {
		t.Fatalf("GET answer % x", p)
	}
	var got []byte
	for {
		w.send(0x82, []byte{0})
		p := w.binary()
		n := int(binary.LittleEndian.Uint16(p))
		if n == 0 {
			break
		}
		got = append(got, p[2:2+n]...)
	}
	if p := w.binary(); !bytes.Equal(p, []byte("WB\x00\x00")) {
		t.Fatalf("GET status % x", p)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("GET returned %q, want %q", got, content)
	}

	// GET_VER answers the board's version.
	w.send(0x82, request(3, 0, ""))
	if p := w.binary(); !bytes.Equal(p, []byte{1, 27, 0}) {
		t.Fatalf("GET_VER answer % x, want 01 1b 00", p)
	}

	// The terminal works afterwards, with a fresh prompt.
	w.send(0x81, []byte("exec(open('ref.py').read())\r"))
	w.text("from the reference client")
}

func TestBrowserStyleClient(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Masked frames, an RFC key and version, the page's own origin, the
	// password typed as text: what webrepl.html does from a page the
	// bridge's host serves.
	conn, err := transport.Dial(ctx, br.URL, &transport.DialOptions{
		Header: http.Header{"Origin": {"http://" + br.Addr}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := protocol.Login(ctx, conn, testPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	typeLine(t, c, "for i in range(3): print('line', i)")
	typeLine(t, c, "")
	out := expect(t, c, "line 2")
	if !contains(out, "line 0", "line 1") {
		t.Errorf("output %q", out)
	}
}

func TestOriginCheck(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{AllowOrigins: []string{"https://ide.example"}})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + br.Addr, true},
		{"https://ide.example", true},
		{"HTTPS://IDE.EXAMPLE", true},
		{"https://evil.example", false},
		{"http://127.0.0.1:1", false},
		{"null", false},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			conn, err := transport.Dial(ctx, br.URL, &transport.DialOptions{Header: h})
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				conn.Close()
				return
			}
			if err == nil {
				conn.Close()
				t.Fatal("a cross-site origin was let in")
			}
			if !strings.Contains(err.Error(), "403") {
				t.Fatalf("refused with %v, want a 403", err)
			}
		})
	}
}
