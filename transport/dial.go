package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// DialOptions configures Dial. The zero value (or nil) gives a 10 s
// handshake limit, the system's TLS roots and a 1 MiB message limit.
type DialOptions struct {
	// HandshakeTimeout bounds connecting plus the WebSocket handshake (for
	// serial: opening plus synchronising). Zero (or negative) means 10 s.
	HandshakeTimeout time.Duration

	// TLSConfig is used for wss:// addresses. Nil means the defaults, with
	// the server name taken from the address.
	TLSConfig *tls.Config

	// Header holds extra request headers (e.g. Origin). Nil sends none.
	Header http.Header

	// MaxMessage is Options.MaxMessage for the returned Conn. Zero means
	// 1 MiB.
	MaxMessage int

	// Baud is the serial line speed used when a serial address gives none.
	// Zero means 115200.
	Baud int

	// Logf receives debug messages. Nil discards them.
	Logf func(string, ...any)
}

// syncResend is how often Dial repeats its close frame while it
// synchronises a serial stream.
const syncResend = 500 * time.Millisecond

// Dial opens a client-role Conn to addr (see ParseAddress for the forms).
//
// For ws:// and wss:// it makes an RFC 6455 handshake (random key, version
// 13, status and Sec-WebSocket-Accept checked), with TCP_NODELAY on and, on
// Linux, TCP_QUICKACK set before every read, which is what makes WebREPL
// GET fast against a real device. Frames the device sends right after its
// answer (its "Password: " prompt) are kept for the first ReadMessage.
//
// For serial://PATH?framing=ws it opens the port and puts WebSocket framing
// on it with no HTTP. A byte stream has no connection start, so Dial
// synchronises first: it sends a close frame carrying a random tag, every
// 500 ms until an answer comes (the peer may be in the middle of a frame
// from an earlier client), and discards what it reads until the peer's
// close answer carrying the same tag (a server-role Conn echoes it). The
// peer then starts a fresh session, and the returned Conn reads it from its
// start.
//
// Raw REPL addresses (serial without framing=ws, tcp, auto, usb, id; see
// Address.IsWebREPL) are errors: open them with OpenStream.
//
// ctx bounds the dial and the handshake only; the returned Conn does not
// keep it.
func Dial(ctx context.Context, addr string, opts *DialOptions) (*Conn, error) {
	var o DialOptions
	if opts != nil {
		o = *opts
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = defaultHandshakeTimeout
	}
	a, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	op := "dial " + a.String()
	var c *Conn
	switch a.Scheme {
	case "ws", "wss":
		c, err = dialWS(ctx, a, &o)
	case "serial":
		c, err = dialSerial(ctx, a, &o)
	case "tcp", "auto", "usb", "id":
		err = errors.New("a raw REPL address (a byte stream, not a WebREPL link): open it with OpenStream")
	default:
		err = fmt.Errorf("unknown scheme %q", a.Scheme)
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	return c, nil
}

func dialWS(ctx context.Context, a Address, o *DialOptions) (*Conn, error) {
	d := ws.Dialer{
		Timeout:   o.HandshakeTimeout,
		TLSConfig: o.TLSConfig,
		NetDial:   netDial,
	}
	if len(o.Header) > 0 {
		d.Header = ws.HandshakeHeaderHTTP(o.Header)
	}
	conn, br, _, err := d.Dial(ctx, a.String())
	if err != nil {
		var se ws.StatusError
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.As(err, &se):
			return nil, fmt.Errorf("the server answered HTTP %d instead of 101 Switching Protocols; is this a WebSocket endpoint?", int(se))
		case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("no connection and handshake within %v: %w", o.HandshakeTimeout, err)
		}
		return nil, err
	}
	// br, if not nil, already holds the first frames (the device sends
	// "Password: " right after its answer): it stays the Conn's reader.
	return NewConn(conn, br, &Options{Role: Client, MaxMessage: o.MaxMessage, Logf: o.Logf}), nil
}

// netDial connects over TCP with Nagle's algorithm off and (on Linux)
// quick ACKs on.
func netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	if err := tc.SetNoDelay(true); err != nil {
		c.Close()
		return nil, err
	}
	return wrapTCP(tc), nil
}

func dialSerial(ctx context.Context, a Address, o *DialOptions) (*Conn, error) {
	switch a.Framing {
	case "ws":
	case "":
		return nil, errors.New("a serial address without framing=ws means the raw REPL, not supported by this command (open it with OpenStream); add ?framing=ws for WebREPL framing on the serial line")
	default:
		return nil, fmt.Errorf("framing %q is not supported by this command (only framing=ws)", a.Framing)
	}
	baud := a.Baud
	if baud == 0 {
		baud = o.Baud
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := OpenSerial(a.Path, &SerialOptions{Baud: baud})
	if err != nil {
		return nil, err
	}
	c := NewConn(s, nil, &Options{Role: Client, MaxMessage: o.MaxMessage, Logf: o.Logf})
	if err := c.syncStream(ctx, o.HandshakeTimeout, syncResend); err != nil {
		c.abort()
		return nil, err
	}
	return c, nil
}

// syncPrefix starts the reason of a synchronising close frame. A server
// echoes such a close's payload in its answer, where firmware would answer
// 88 00.
const syncPrefix = "webrepl-sync "

func isSyncClose(p []byte) bool {
	return len(p) > 2 && bytes.HasPrefix(p[2:], []byte(syncPrefix))
}

// syncStream sends a close frame carrying a random tag, repeated every
// resend, and reads and discards everything up to the peer's answer that
// carries the same tag. It gives up after timeout or when ctx is done,
// closing the stream. The tag tells the answer to this close from the
// answer to an earlier client's (or to an earlier session's own close),
// which may still be in the line's buffers.
func (c *Conn) syncStream(ctx context.Context, timeout, resend time.Duration) error {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(sctx, c.abort)

	tag := make([]byte, 8)
	rand.Read(tag)
	body := binary.BigEndian.AppendUint16(nil, 1000)
	body = append(body, syncPrefix...)
	body = hex.AppendEncode(body, tag)
	c.syncBody = body
	answer := append([]byte{0x88, byte(len(body))}, body...)

	send := func() error {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.writeFrameLocked(opClose, body)
	}
	// The sender runs beside the reader, so that a peer that is busy
	// writing to an unbuffered stream is drained while we wait.
	var sendErr error
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(resend)
		defer t.Stop()
		for {
			if sendErr = send(); sendErr != nil {
				c.abort() // ends the reader
				return
			}
			select {
			case <-done:
				return
			case <-t.C:
				c.logf("webrepl: no close answer yet; sending the close frame again")
			}
		}
	})
	err := c.awaitBytes(answer)
	close(done)
	wg.Wait()
	if !stop() {
		if ctx.Err() != nil {
			return fmt.Errorf("synchronising with the peer: %w", ctx.Err())
		}
		return fmt.Errorf("no answer to a close frame within %v; is a WebREPL server with WebSocket framing on the other end? %w", timeout, os.ErrDeadlineExceeded)
	}
	if sendErr != nil {
		return fmt.Errorf("synchronising with the peer: %w", sendErr)
	}
	if err != nil {
		return fmt.Errorf("synchronising with the peer: %w", unexpected(err))
	}
	return nil
}

// awaitBytes reads and discards bytes up to and including the first
// occurrence of want. Scanning bytes rather than frames keeps it in step
// whatever half-frames an earlier client left on the line.
func (c *Conn) awaitBytes(want []byte) error {
	window := make([]byte, 0, len(want))
	skipped := 0
	for {
		b, err := c.br.ReadByte()
		if err != nil {
			return err
		}
		if len(window) == len(want) {
			copy(window, window[1:])
			window = window[:len(want)-1]
		}
		window = append(window, b)
		if bytes.Equal(window, want) {
			if skipped > len(want)-1 {
				c.logf("webrepl: skipped %d bytes before the close answer", skipped-len(want)+1)
			}
			return nil
		}
		skipped++
	}
}
