package transport

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Sentinel errors. They are always returned wrapped, with details; test for
// them with errors.Is.
var (
	// ErrMessageTooBig: the peer announced a frame or message larger than
	// the configured MaxMessage. The Conn answered with close code 1009 and
	// cannot be read from any more.
	ErrMessageTooBig = errors.New("webrepl: message too big")

	// ErrProtocol: the peer broke WebSocket framing in a way that cannot be
	// tolerated (a reserved opcode, an oversized control frame, a
	// continuation frame with no message to continue, ...). The Conn cannot
	// be read from any more.
	ErrProtocol = errors.New("webrepl: WebSocket protocol error")

	// ErrNotWebSocket: Accept got a request that is not a WebSocket upgrade
	// (a plain HTTP request, garbage, a TLS hello). The peer was answered
	// "400 Bad Request". Returned inside a *HandshakeError.
	ErrNotWebSocket = errors.New("webrepl: not a WebSocket request")

	// ErrPortBusy: another program holds the serial port. Returned inside a
	// *SerialError.
	ErrPortBusy = errors.New("webrepl: serial port busy")
)

// HandshakeError reports a failed server handshake (Accept).
//
// errors.Is(err, ErrNotWebSocket) holds when Status is 400: the request was
// not a WebSocket upgrade at all.
type HandshakeError struct {
	// Remote is the peer's address (conn.RemoteAddr), "" if unknown.
	Remote string
	// Status is the HTTP status sent to the peer (400, 403, 426, 431), or 0
	// if nothing was sent (timeout, cancelled context, the peer went away).
	Status int
	// Reason says what was wrong, for people.
	Reason string
	// Err is the underlying cause, if any (an I/O error, os.ErrDeadlineExceeded,
	// a context error).
	Err error
}

func (e *HandshakeError) Error() string {
	var b strings.Builder
	b.WriteString("webrepl: handshake")
	if e.Remote != "" {
		b.WriteString(" from ")
		b.WriteString(e.Remote)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Status != 0 {
		b.WriteString(" (answered ")
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteString(" ")
		b.WriteString(http.StatusText(e.Status))
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(trimPrefix(e.Err.Error()))
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *HandshakeError) Unwrap() error { return e.Err }

// Is reports ErrNotWebSocket for requests answered with 400 Bad Request.
func (e *HandshakeError) Is(target error) bool {
	return target == ErrNotWebSocket && e.Status == http.StatusBadRequest
}

// SerialError reports a failed operation on a serial port. Err is matched by
// errors.Is: fs.ErrNotExist (no such port), fs.ErrPermission, ErrPortBusy,
// net.ErrClosed (the port was closed, or the device was unplugged), or an
// OS error.
type SerialError struct {
	Op   string // "open", "read", "write", "close", "set DTR", "set RTS", "reset"
	Path string // the device path
	Err  error
}

func (e *SerialError) Error() string {
	return "webrepl: serial " + e.Path + ": " + e.Op + ": " + trimPrefix(e.Err.Error())
}

// Unwrap returns the underlying cause.
func (e *SerialError) Unwrap() error { return e.Err }

// opError adds the operation to an error and keeps a single "webrepl: "
// prefix at the front of the message.
type opError struct {
	op  string
	err error
}

func (e *opError) Error() string      { return "webrepl: " + e.op + ": " + trimPrefix(e.err.Error()) }
func (e *opError) Unwrap() error      { return e.err }
func wrap(op string, err error) error { return &opError{op: op, err: err} }

// trimPrefix drops our own prefix from a wrapped error's text so that
// messages read "webrepl: read: message too big: ..." rather than repeating
// "webrepl: " at every level. It only formats; nothing matches on text.
func trimPrefix(s string) string { return strings.TrimPrefix(s, "webrepl: ") }
