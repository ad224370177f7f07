package transport

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// AcceptOptions configures Accept. The zero value (or nil) gives a 10 s
// handshake limit, any Origin accepted, and a 1 MiB message limit.
type AcceptOptions struct {
	// HandshakeTimeout bounds reading the request and writing the answer.
	// Zero (or negative) means 10 s. A peer that stalls gets no answer and
	// Accept returns an error wrapping os.ErrDeadlineExceeded.
	HandshakeTimeout time.Duration

	// CheckOrigin decides whether to accept a request, typically by its
	// Origin header (browsers send it; webrepl_cli.py does not). A refused
	// request is answered "403 Forbidden". Nil accepts every request.
	CheckOrigin func(r *http.Request) bool

	// Faithful makes the server behave like MicroPython on TCP: frame
	// headers and payloads go out in separate writes (Options.SplitWrites)
	// and, on a *net.TCPConn, Nagle's algorithm is turned back on (Go turns
	// TCP_NODELAY on by default; the device does not).
	Faithful bool

	// MaxMessage is Options.MaxMessage for the returned Conn. Zero means
	// 1 MiB.
	MaxMessage int

	// Logf receives debug messages. Nil discards them.
	Logf func(string, ...any)
}

const (
	defaultHandshakeTimeout = 10 * time.Second
	// maxRequestHeader bounds the size of the request line plus headers.
	maxRequestHeader = 16 << 10
	// websocketGUID is appended to the key to make the accept value
	// (RFC 6455 §1.3).
	websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

var errHeaderTooLarge = errors.New("request header larger than 16 KiB")

// Accept performs a server handshake on conn and returns a server-role
// Conn. On failure it answers the peer where that makes sense (400, 403,
// 426, 431), closes conn, and returns a *HandshakeError.
//
// The handshake is lenient, so that the reference webrepl_cli.py, which
// does not follow RFC 6455, can connect: any non-empty Sec-WebSocket-Key is
// accepted (the CLI sends "foo"), Sec-WebSocket-Version may be missing (if
// present it must be 13), any path and any Host are accepted, and the
// Connection and Upgrade headers are matched as case-insensitive tokens.
// The answer is exactly
//
//	HTTP/1.1 101 Switching Protocols
//	Upgrade: websocket
//	Connection: Upgrade
//	Sec-WebSocket-Accept: <base64(sha1(key + GUID))>
//
// with CRLF line ends and nothing else, as the device sends.
//
// Bytes the client sent right after its request are kept for the first
// ReadMessage. The request and the answer must complete within
// HandshakeTimeout and before ctx is done; the deadline is cleared
// afterwards. Accept starts no goroutines. The caller closes the returned
// Conn (also after ReadMessage returned io.EOF).
func Accept(ctx context.Context, conn net.Conn, opts *AcceptOptions) (*Conn, error) {
	var o AcceptOptions
	if opts != nil {
		o = *opts
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = defaultHandshakeTimeout
	}
	remote := ""
	if a := conn.RemoteAddr(); a != nil {
		remote = a.String()
	}
	fail := func(status int, reason string, err error) (*Conn, error) {
		conn.Close()
		return nil, &HandshakeError{Remote: remote, Status: status, Reason: reason, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return fail(0, "not started", err)
	}

	// The handshake timeout is a deadline on conn; ctx (which may have an
	// earlier deadline) moves that deadline into the past when it is done.
	if err := conn.SetDeadline(time.Now().Add(o.HandshakeTimeout)); err != nil {
		return fail(0, "cannot set a deadline", err)
	}
	stopWatch := context.AfterFunc(ctx, func() {
		conn.SetDeadline(time.Unix(1, 0)) // in the past: pending I/O fails now
	})
	// cut reports whether ctx cut the handshake short. It stops the watch
	// the first time it is called and remembers the answer.
	var cutDone, cutByCtx bool
	cut := func() bool {
		if !cutDone {
			cutDone, cutByCtx = true, !stopWatch()
		}
		return cutByCtx
	}
	// ioFailure describes an I/O error during the handshake, preferring the
	// context's error when the context is what cut it short.
	ioFailure := func(what string, err error) (*Conn, error) {
		switch {
		case cut() || ctx.Err() != nil:
			return fail(0, what, ctx.Err())
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fail(0, what+": nothing complete within "+o.HandshakeTimeout.String(), err)
		case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
			return fail(0, what+": the peer closed the connection", err)
		}
		return fail(0, what, err)
	}

	lr := &handshakeReader{r: conn, n: maxRequestHeader}
	br := bufio.NewReader(lr)
	req, err := http.ReadRequest(br)
	if err != nil {
		switch {
		case errors.Is(err, errHeaderTooLarge):
			writeAnswer(conn, http.StatusRequestHeaderFieldsTooLarge, "", "WebREPL: request header too large.\n")
			cut()
			return fail(http.StatusRequestHeaderFieldsTooLarge, "request header larger than 16 KiB", nil)
		case cut() || err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || isNetError(err):
			return ioFailure("reading the request", err)
		}
		writeAnswer(conn, http.StatusBadRequest, "", notWebSocketBody)
		return fail(http.StatusBadRequest, "not a WebSocket request: malformed HTTP request", err)
	}
	key, status, reason := checkUpgrade(req)
	if status == http.StatusOK && o.CheckOrigin != nil && !o.CheckOrigin(req) {
		status, reason = http.StatusForbidden, fmt.Sprintf("origin %q refused", req.Header.Get("Origin"))
	}
	if status != http.StatusOK {
		var extra, body string
		switch status {
		case http.StatusBadRequest:
			body = notWebSocketBody
		case http.StatusUpgradeRequired:
			extra = "Sec-WebSocket-Version: 13\r\n"
			body = "WebREPL: only WebSocket version 13 is supported.\n"
		case http.StatusForbidden:
			body = "WebREPL: origin not allowed.\n"
		}
		writeAnswer(conn, status, extra, body)
		cut()
		return fail(status, reason, nil)
	}

	answer := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\n\r\n"
	if _, err := io.WriteString(conn, answer); err != nil {
		return ioFailure("writing the answer", err)
	}
	if cut() {
		return fail(0, "writing the answer", ctx.Err())
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fail(0, "cannot clear the deadline", err)
	}
	lr.unlimit()
	if tc, ok := conn.(*net.TCPConn); ok && o.Faithful {
		if err := tc.SetNoDelay(false); err != nil {
			return fail(0, "cannot turn Nagle's algorithm on", err)
		}
	}
	return NewConn(conn, br, &Options{
		Role:        Server,
		MaxMessage:  o.MaxMessage,
		SplitWrites: o.Faithful,
		Logf:        o.Logf,
	}), nil
}

const notWebSocketBody = "This is a WebREPL endpoint: it speaks WebSocket only.\n" +
	"Connect with a WebREPL client (webrepl.html, webrepl_cli.py, or this project's tool).\n"

// checkUpgrade checks the request leniently. It returns the key and
// http.StatusOK, or the status to answer with and why.
func checkUpgrade(req *http.Request) (key string, status int, reason string) {
	if req.Method != http.MethodGet {
		return "", http.StatusBadRequest, "not a WebSocket request: method " + req.Method + " is not GET"
	}
	if !hasToken(req.Header.Values("Upgrade"), "websocket") {
		return "", http.StatusBadRequest, "not a WebSocket request: no \"Upgrade: websocket\" header"
	}
	if !hasToken(req.Header.Values("Connection"), "upgrade") {
		return "", http.StatusBadRequest, "not a WebSocket request: no \"Connection: Upgrade\" header"
	}
	key = strings.TrimSpace(req.Header.Get("Sec-WebSocket-Key"))
	if key == "" {
		return "", http.StatusBadRequest, "not a WebSocket request: no Sec-WebSocket-Key header"
	}
	if v, ok := req.Header["Sec-Websocket-Version"]; ok {
		if len(v) != 1 || strings.TrimSpace(v[0]) != "13" {
			return "", http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version " + strconv.Quote(strings.Join(v, ", "))
		}
	}
	return key, http.StatusOK, ""
}

// hasToken reports whether one of the comma-separated values holds token,
// compared without regard to case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// acceptKey computes Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + websocketGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// writeAnswer writes a short plain-text HTTP answer and ignores errors: the
// connection is about to be closed anyway.
func writeAnswer(w io.Writer, status int, extraHeaders, body string) {
	io.WriteString(w, "HTTP/1.1 "+strconv.Itoa(status)+" "+http.StatusText(status)+"\r\n"+
		extraHeaders+
		"Content-Type: text/plain; charset=utf-8\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n"+
		"Connection: close\r\n\r\n"+body)
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// handshakeReader limits how much the request may take, then, once
// unlimited, passes reads straight through. The Conn's bufio.Reader keeps
// reading through it, so that bytes buffered during the handshake are kept.
type handshakeReader struct {
	r io.Reader
	n int // bytes left while limited; -1: unlimited
}

func (h *handshakeReader) Read(p []byte) (int, error) {
	if h.n < 0 {
		return h.r.Read(p)
	}
	if h.n == 0 {
		return 0, errHeaderTooLarge
	}
	if len(p) > h.n {
		p = p[:h.n]
	}
	n, err := h.r.Read(p)
	h.n -= n
	return n, err
}

func (h *handshakeReader) unlimit() { h.n = -1 }
