package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// UpgradeOptions configures Upgrade. The zero value (or nil) accepts any
// Origin, gives the answer 10 s to go out, and a 1 MiB message limit.
type UpgradeOptions struct {
	// CheckOrigin decides whether to accept the request, as
	// AcceptOptions.CheckOrigin does. A refused request is answered
	// "403 Forbidden". Nil accepts every request.
	CheckOrigin func(r *http.Request) bool

	// WriteTimeout bounds writing the 101 answer. Zero (or negative)
	// means 10 s.
	WriteTimeout time.Duration

	// MaxMessage is Options.MaxMessage for the returned Conn. Zero means
	// 1 MiB.
	MaxMessage int

	// Logf receives debug messages. Nil discards them.
	Logf func(string, ...any)
}

// IsUpgrade reports whether r asks for a WebSocket (its Connection header
// has the token "upgrade" and its Upgrade header "websocket"), so that an
// HTTP handler can tell WebSocket clients from plain HTTP ones.
func IsUpgrade(r *http.Request) bool {
	return hasToken(r.Header.Values("Upgrade"), "websocket") && hasToken(r.Header.Values("Connection"), "upgrade")
}

// Upgrade turns an HTTP request received by a net/http server into a
// server-role Conn: the WebSocket handshake of Accept, with the same
// leniency (any non-empty key, a missing version) and the same exact 101
// answer, for servers that also answer plain HTTP on the same port (and
// so parse requests with net/http, which also bounds the time and size of
// the request through http.Server's settings).
//
// A request that is not a WebSocket request, or whose origin is refused,
// is answered through w (400, 403 or 426) and gets a *HandshakeError.
// Otherwise the connection is hijacked (w must support http.Hijacker, as
// the server's ResponseWriter does for HTTP/1.x), the answer is written,
// deadlines are cleared, and bytes the client sent after its request are
// kept for the first ReadMessage. The caller owns the returned Conn, and
// must not use w afterwards.
func Upgrade(w http.ResponseWriter, r *http.Request, opts *UpgradeOptions) (*Conn, error) {
	var o UpgradeOptions
	if opts != nil {
		o = *opts
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = defaultHandshakeTimeout
	}
	fail := func(status int, reason string, err error) (*Conn, error) {
		return nil, &HandshakeError{Remote: r.RemoteAddr, Status: status, Reason: reason, Err: err}
	}
	key, status, reason := checkUpgrade(r)
	if status == http.StatusOK && o.CheckOrigin != nil && !o.CheckOrigin(r) {
		status, reason = http.StatusForbidden, fmt.Sprintf("origin %q refused", r.Header.Get("Origin"))
	}
	if status != http.StatusOK {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Connection", "close")
		body := notWebSocketBody
		switch status {
		case http.StatusUpgradeRequired:
			h.Set("Sec-WebSocket-Version", "13")
			body = "WebREPL: only WebSocket version 13 is supported.\n"
		case http.StatusForbidden:
			body = "WebREPL: origin not allowed.\n"
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
		return fail(status, reason, nil)
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "WebREPL: this connection cannot be upgraded", http.StatusInternalServerError)
		return fail(http.StatusInternalServerError, "the response writer cannot hijack", errors.ErrUnsupported)
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return fail(0, "hijacking the connection", err)
	}
	answer := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n"
	conn.SetWriteDeadline(time.Now().Add(o.WriteTimeout))
	if _, err := io.WriteString(conn, answer); err != nil {
		conn.Close()
		return fail(0, "writing the answer", err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return fail(0, "cannot clear the deadline", err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		conn = wrapTCP(tc)
	}
	// Read through a reader of our own on conn (so that the TCP tuning
	// applies), starting with what the server's reader already holds.
	var src io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		head, _ := brw.Reader.Peek(n)
		src = io.MultiReader(bytes.NewReader(bytes.Clone(head)), conn)
	}
	br := bufio.NewReaderSize(src, 1024)
	return NewConn(conn, br, &Options{
		Role:       Server,
		MaxMessage: o.MaxMessage,
		Logf:       o.Logf,
	}), nil
}
