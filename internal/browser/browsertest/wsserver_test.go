package browsertest_test

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// wsServer is a minimal WebSocket server (RFC 6455), written here so that
// the kit's tests need nothing outside the standard library. It records
// the Origin of every handshake, refuses with 403 the origins that are
// not on its allow-list, and greets an accepted client with one text
// frame, "hello". It reads nothing after the handshake; a connection ends
// when the client goes away or the test ends.
type wsServer struct {
	url string // its origin, "http://127.0.0.1:PORT"

	mu      sync.Mutex
	allowed map[string]bool
	origins []string          // Origin of each handshake, in order
	conns   map[net.Conn]bool // hijacked connections still open
	wg      sync.WaitGroup    // hijacked connections' handlers
}

// newWSServer starts a server that allows the origins given, and stops it
// (closing its connections) when the test ends.
func newWSServer(t *testing.T, allowed ...string) *wsServer {
	ws := &wsServer{allowed: map[string]bool{}, conns: map[net.Conn]bool{}}
	for _, o := range allowed {
		ws.allowed[o] = true
	}
	srv := httptest.NewServer(http.HandlerFunc(ws.serveHTTP))
	ws.url = srv.URL
	t.Cleanup(func() {
		srv.Close() // does not track hijacked connections: close them
		ws.mu.Lock()
		for c := range ws.conns {
			c.Close()
		}
		ws.mu.Unlock()
		ws.wg.Wait()
	})
	return ws
}

// allow adds origin to the allow-list.
func (ws *wsServer) allow(origin string) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.allowed[origin] = true
}

// seen returns the Origin headers of the handshakes so far.
func (ws *wsServer) seen() []string {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]string(nil), ws.origins...)
}

// acceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC
// 6455 section 4.2.2, step 5.4).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// hasToken reports whether a comma-separated header lists token, ignoring
// case ("Connection: keep-alive, Upgrade").
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (ws *wsServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	ws.mu.Lock()
	ws.origins = append(ws.origins, origin)
	ok := ws.allowed[origin]
	ws.mu.Unlock()
	if !ok {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}

	key := r.Header.Get("Sec-WebSocket-Key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 ||
		r.Method != http.MethodGet ||
		!hasToken(r.Header, "Connection", "upgrade") ||
		!strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
		r.Header.Get("Sec-WebSocket-Version") != "13" {
		http.Error(w, "not a WebSocket handshake", http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ws.mu.Lock()
	ws.conns[conn] = true
	ws.wg.Add(1)
	ws.mu.Unlock()
	defer func() {
		conn.Close()
		ws.mu.Lock()
		delete(ws.conns, conn)
		ws.mu.Unlock()
		ws.wg.Done()
	}()

	rw.WriteString("HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n")
	// A server's frames are not masked: FIN and opcode 1 (text), then
	// the payload length, under 126 here (RFC 6455 section 5.2).
	const hello = "hello"
	rw.Write([]byte{0x81, byte(len(hello))})
	rw.WriteString(hello)
	if rw.Flush() != nil {
		return
	}
	io.Copy(io.Discard, rw) // until the client or the cleanup closes
}

// TestAcceptKey checks the handshake hash against RFC 6455 section 1.3.
func TestAcceptKey(t *testing.T) {
	if got, want := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Errorf("acceptKey = %q; want %q", got, want)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}
