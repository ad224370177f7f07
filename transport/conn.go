package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Role says which end of a WebSocket a Conn is.
type Role uint8

const (
	// Client masks every frame it writes with a fresh random key (RFC 6455
	// §5.3), answers a close frame with an empty masked close frame, and
	// sends an empty close frame on Close.
	Client Role = iota
	// Server writes unmasked frames, cuts text writes on UTF-8 boundaries,
	// answers a close frame with exactly 88 00 (as MicroPython does) and
	// closes without a close frame (as MicroPython does).
	Server
)

// String returns "client" or "server".
func (r Role) String() string {
	switch r {
	case Client:
		return "client"
	case Server:
		return "server"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Options configures NewConn. The zero value (or a nil *Options) gives a
// client-role Conn with a 1 MiB message limit.
type Options struct {
	// Role is the end of the connection this Conn is. Zero is Client.
	Role Role

	// MaxMessage is the largest payload of one message, after fragments
	// are joined. Zero (or negative) means 1 MiB. A frame header that
	// announces more (including any 64-bit length) is never allocated: the
	// Conn sends close 1009 (best effort) and ReadMessage returns an error
	// wrapping ErrMessageTooBig.
	MaxMessage int

	// SplitWrites writes each frame's header and payload with separate
	// Write calls, as a MicroPython device does. The faithful emulator sets
	// it so that a client's speed measured against it means something. By
	// default a frame of up to 32 KiB goes out in a single Write.
	SplitWrites bool

	// Logf receives debug messages (peer close codes, ignored pongs, ...).
	// Nil discards them.
	Logf func(format string, args ...any)
}

const (
	defaultMaxMessage = 1 << 20
	// closeWait bounds the best-effort close frames written by Close and on
	// fatal read errors.
	closeWait = time.Second
	// writeChunk is the most payload copied into the write buffer at once
	// (for masking, or to send header and payload in one Write).
	writeChunk = 32 << 10
	// readChunk is how much payload buffer is added at a time while a
	// frame is read, so that memory follows the bytes that really arrive
	// rather than the length a header announces.
	readChunk = 64 << 10
)

// Conn is one WebSocket connection (or WebSocket framing on a plain byte
// stream): a sequence of whole text or binary messages in each direction.
//
// ReadMessage must be called from one goroutine at a time; someone must keep
// reading, because ping and close frames are answered from inside
// ReadMessage. WriteMessage may be called from several goroutines; writes
// are serialised. Close may be called at any time from any goroutine, any
// number of times, and unblocks pending calls.
type Conn struct {
	rw        io.ReadWriteCloser
	br        *bufio.Reader
	role      Role
	max       int
	split     bool
	logf      func(string, ...any)
	closeWait time.Duration

	// Read side, owned by the goroutine holding rmu.
	rmu  sync.Mutex
	rhdr [maxHeaderSize]byte
	ctrl [maxControlPayload]byte
	rerr error // sticky: once reading failed (or hit the close), it stays failed

	// Write side, guarded by wmu.
	wmu       sync.Mutex
	wbuf      []byte
	text      textCutter
	werr      error // sticky write error: the stream is out of step
	closeSent bool  // a close frame went out; no data frames may follow
	maskKey   func() [4]byte
	syncBody  []byte // client role: the payload of Dial's synchronising close frames
	rnd       [64]byte
	nrnd      int

	closing   atomic.Bool // Close was called or a context closed the stream
	closeOnce sync.Once
	closeErr  error
}

// NewConn frames messages straight on a byte stream, with no HTTP
// handshake: "WebREPL over UART", pipes, pseudo-terminals. NewConn takes
// ownership of rw: Close (or a cancelled context) closes it.
//
// br, if non-nil, must read from rw and may already hold bytes of it; all
// reads go through it. If br is nil, NewConn makes one.
//
// Reusing a stream. A byte stream has no connection start or end, so a
// server-role Conn that receives a close frame answers 88 00 and makes
// ReadMessage return io.EOF without closing rw. The owner may then start a
// new Conn on the same rw with the same br (pass in a br of your own to be
// able to): it continues right after the close frame. Do not Close the old
// Conn in that case, since Close closes rw (if code you do not control
// closes it, give NewConn an rw whose Close does nothing, at the price of
// contexts no longer being able to interrupt a blocked read). After the
// close the old Conn refuses further writes.
func NewConn(rw io.ReadWriteCloser, br *bufio.Reader, opts *Options) *Conn {
	var o Options
	if opts != nil {
		o = *opts
	}
	if br == nil {
		br = bufio.NewReader(rw)
	}
	max := o.MaxMessage
	if max <= 0 {
		max = defaultMaxMessage
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Conn{
		rw:        rw,
		br:        br,
		role:      o.Role,
		max:       max,
		split:     o.SplitWrites,
		logf:      logf,
		closeWait: closeWait,
	}
}

// Role returns the Conn's role.
func (c *Conn) Role() Role { return c.role }

// ReadMessage returns the next data message: whether it is binary (false:
// text) and its payload, which belongs to the caller.
//
// Fragmented messages are joined. RSV bits are ignored. Received text is
// not checked for valid UTF-8 (devices split characters across frames and
// send bytes that are not UTF-8). Frames may be masked or not, whatever the
// role: the reference webrepl_cli.py sends unmasked frames. Empty messages
// (such as the empty frames some clients send as keep-alives) are skipped,
// as MicroPython skips them.
//
// Control frames are handled on the way: a ping is answered with a pong
// carrying the same payload, a pong is ignored, and a close frame is
// answered with a close frame (exactly 88 00 in the server role), after
// which ReadMessage returns io.EOF. It does not close rw then (see NewConn).
// A stream that ends cleanly between frames also gives io.EOF; one that
// ends inside a frame or a fragmented message gives an error wrapping
// io.ErrUnexpectedEOF.
//
// Every other error is final: later calls return it again. If ctx is done
// before ReadMessage returns, the stream is closed and the error wraps
// ctx.Err(). Only one goroutine may call ReadMessage at a time.
func (c *Conn) ReadMessage(ctx context.Context) (binary bool, p []byte, err error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return false, nil, c.rerr
	}
	if err := c.checkOpen(ctx, "read"); err != nil {
		return false, nil, err
	}
	stop := c.watch(ctx)
	binary, p, err = c.readMessage()
	if err != nil {
		c.rerr = c.fail(ctx, stop, "read", err)
		return false, nil, c.rerr
	}
	if stop != nil {
		stop()
	}
	return binary, p, nil
}

// WriteMessage sends p as one message in one frame with FIN set, a text
// frame unless binary. It does not keep or change p. It is safe to call
// from several goroutines; writes are serialised.
//
// In the server role, text is made valid UTF-8 before it is sent, because
// browsers drop a connection that carries invalid UTF-8 in a text frame: an
// incomplete multi-byte character at the end of p is held back and sent in
// front of the next text write, and bytes that cannot be UTF-8 become
// U+FFFD. A text write that consists only of a held-back partial character
// sends no frame. Binary messages, and everything a client sends, go out
// unchanged. An empty p sends an empty frame.
//
// If ctx is done before WriteMessage returns, the stream is closed and the
// error wraps ctx.Err(). After a failed write every later write fails.
func (c *Conn) WriteMessage(ctx context.Context, binary bool, p []byte) error {
	if err := c.checkOpen(ctx, "write"); err != nil {
		return err
	}
	stop := c.watch(ctx)
	c.wmu.Lock()
	err := c.writeMessageLocked(binary, p)
	c.wmu.Unlock()
	if err != nil {
		return c.fail(ctx, stop, "write", err)
	}
	if stop != nil {
		stop()
	}
	return nil
}

// Close closes the connection. In the client role it first sends an empty
// close frame if it can do so at once and within a second; then it closes
// rw. Pending reads and writes return errors wrapping net.ErrClosed. Close
// is idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		if c.role == Client {
			c.closeBestEffort(nil)
		}
		err := c.rw.Close()
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
			err = nil // closed already, e.g. by a bounded write giving up
		}
		if err != nil {
			c.closeErr = wrap("close", err)
		}
	})
	return c.closeErr
}

// abort closes the stream without a close frame; a context fired.
func (c *Conn) abort() {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.rw.Close()
	})
}

// checkOpen fails fast on a closed Conn or a done ctx (closing the stream,
// as a ctx that fires during the call would).
func (c *Conn) checkOpen(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		c.abort()
		return wrap(op, fmt.Errorf("%w (the connection was closed)", err))
	}
	if c.closing.Load() {
		return wrap(op, net.ErrClosed)
	}
	return nil
}

// watch arranges for the stream to close when ctx is done. The returned
// stop function (nil if ctx can never be done) reports false if that
// already happened.
func (c *Conn) watch(ctx context.Context) (stop func() bool) {
	if ctx.Done() == nil {
		return nil
	}
	return context.AfterFunc(ctx, c.abort)
}

// fail turns an error of a read or write into what the caller sees.
func (c *Conn) fail(ctx context.Context, stop func() bool, op string, err error) error {
	if stop != nil && !stop() {
		return wrap(op, fmt.Errorf("%w (the connection was closed)", ctx.Err()))
	}
	if err == io.EOF {
		return io.EOF
	}
	if c.closing.Load() {
		return wrap(op, net.ErrClosed)
	}
	var oe *opError
	if errors.As(err, &oe) {
		return err
	}
	return wrap(op, err)
}

// unexpected turns the end of the stream inside a frame into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("the stream ended inside a frame: %w", io.ErrUnexpectedEOF)
	}
	return err
}

func (c *Conn) readMessage() (binary bool, msg []byte, err error) {
	started := false // a data frame without FIN was read
	for {
		h, err := c.readHeader(started)
		if err != nil {
			return false, nil, err
		}
		if isControl(h.op) {
			if err := c.handleControl(h); err != nil {
				return false, nil, err
			}
			continue
		}
		switch h.op {
		case opText, opBinary:
			if started {
				return false, nil, c.protocolError("a new data frame arrived inside a fragmented message")
			}
			started = true
			binary = h.op == opBinary
		case opContinuation:
			if !started {
				return false, nil, c.protocolError("a continuation frame arrived with no message to continue")
			}
		default:
			return false, nil, c.protocolError(fmt.Sprintf("reserved opcode %#x", h.op))
		}
		if h.length > uint64(c.max-len(msg)) {
			c.closeBestEffort(closeBody(closeMessageTooBig))
			if len(msg) == 0 {
				return false, nil, fmt.Errorf("%w: a frame announces %d bytes, the limit is %d", ErrMessageTooBig, h.length, c.max)
			}
			return false, nil, fmt.Errorf("%w: a fragment of %d bytes after %d would pass the limit of %d", ErrMessageTooBig, h.length, len(msg), c.max)
		}
		if msg, err = c.readPayload(msg, h); err != nil {
			return false, nil, err
		}
		if h.fin {
			if len(msg) == 0 {
				started = false // an empty message: skip it
				continue
			}
			return binary, msg, nil
		}
	}
}

// readHeader reads one frame header. A clean end of the stream before its
// first byte is io.EOF, unless a fragmented message is under way.
func (c *Conn) readHeader(inMessage bool) (header, error) {
	if _, err := io.ReadFull(c.br, c.rhdr[:2]); err != nil {
		if err == io.EOF && !inMessage {
			return header{}, io.EOF
		}
		return header{}, unexpected(err)
	}
	n := headerLen(c.rhdr[1])
	if n > 2 {
		if _, err := io.ReadFull(c.br, c.rhdr[2:n]); err != nil {
			return header{}, unexpected(err)
		}
	}
	return decodeHeader(c.rhdr[:n]), nil
}

// readPayload appends the frame's payload, unmasked, to msg. The caller
// has checked h.length against the limit. The buffer grows as bytes
// arrive, not by what the header announces.
func (c *Conn) readPayload(msg []byte, h header) ([]byte, error) {
	n := int(h.length)
	for off := 0; off < n; {
		chunk := min(n-off, readChunk)
		start := len(msg)
		msg = slices.Grow(msg, chunk)[:start+chunk]
		if _, err := io.ReadFull(c.br, msg[start:]); err != nil {
			return msg, unexpected(err)
		}
		if h.masked {
			ws.Cipher(msg[start:], h.key, off)
		}
		off += chunk
	}
	return msg, nil
}

func (c *Conn) handleControl(h header) error {
	if h.length > maxControlPayload {
		return c.protocolError(fmt.Sprintf("control frame (opcode %#x) with a %d-byte payload; the limit is 125", h.op, h.length))
	}
	p := c.ctrl[:h.length]
	if _, err := io.ReadFull(c.br, p); err != nil {
		return unexpected(err)
	}
	if h.masked {
		ws.Cipher(p, h.key, 0)
	}
	switch h.op {
	case opPing:
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if c.closeSent || c.werr != nil {
			return nil
		}
		if err := c.writeFrameLocked(opPong, p); err != nil {
			c.werr = err
			return fmt.Errorf("answering a ping: %w", err)
		}
		return nil
	case opPong:
		c.logf("webrepl: ignoring a pong (%d bytes)", len(p))
		return nil
	case opClose:
		if c.role == Client && c.syncBody != nil && bytes.Equal(p, c.syncBody) {
			// A late answer to one of Dial's repeated synchronising
			// closes: the session it ended is not ours.
			c.logf("webrepl: ignoring a late answer to a synchronising close")
			return nil
		}
		if len(p) >= 2 {
			c.logf("webrepl: peer closed: code %d %q", binary.BigEndian.Uint16(p), p[2:])
		} else {
			c.logf("webrepl: peer closed")
		}
		// Answer as firmware does (88 00), except that a synchronising
		// close (see Dial) gets its payload back, so that the client can
		// tell the answer to its own close from an earlier one.
		var reply []byte
		if c.role == Server && isSyncClose(p) {
			reply = p
		}
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if !c.closeSent && c.werr == nil {
			c.closeSent = true
			if err := c.writeFrameLocked(opClose, reply); err != nil {
				c.werr = err
				c.logf("webrepl: answering a close: %v", err)
			}
		}
		return io.EOF
	}
	return c.protocolError(fmt.Sprintf("reserved control opcode %#x", h.op))
}

// protocolError sends close 1002 (best effort) and returns the error.
func (c *Conn) protocolError(what string) error {
	c.closeBestEffort(closeBody(closeProtocolError))
	return fmt.Errorf("%w: %s", ErrProtocol, what)
}

func closeBody(code uint16) []byte {
	return binary.BigEndian.AppendUint16(nil, code)
}

// EndSession sends a close frame (unless one went out already) without
// closing the stream: on a byte stream that carries one session after
// another (see NewConn), it is how the server side drops a session, as a
// device drops a TCP connection. It gives up after a second. The Conn
// accepts no more data messages; start a new Conn for the next session.
func (c *Conn) EndSession() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent || c.werr != nil {
		return
	}
	c.closeSent = true
	if err := c.boundedWrite(func() error { return c.writeFrameLocked(opClose, nil) }); err != nil {
		c.werr = err
		c.logf("webrepl: sending a close frame: %v", err)
	}
}

// closeBestEffort sends a close frame with the given body, unless a write
// is under way or a close frame went out already, and gives up after
// closeWait.
func (c *Conn) closeBestEffort(body []byte) {
	if !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	if c.closeSent || c.werr != nil {
		return
	}
	c.closeSent = true
	if err := c.boundedWrite(func() error { return c.writeFrameLocked(opClose, body) }); err != nil {
		c.werr = err
		c.logf("webrepl: sending a close frame: %v", err)
	}
}

// boundedWrite runs write (which writes to rw) with a time limit of
// c.closeWait: through a write deadline if rw has one, otherwise by closing
// rw when the time is up. The caller holds wmu.
func (c *Conn) boundedWrite(write func() error) error {
	if d, ok := c.rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		if d.SetWriteDeadline(time.Now().Add(c.closeWait)) == nil {
			err := write()
			d.SetWriteDeadline(time.Time{})
			return err
		}
	}
	fired := make(chan struct{})
	t := time.AfterFunc(c.closeWait, func() {
		defer close(fired)
		c.rw.Close()
	})
	err := write()
	if !t.Stop() {
		<-fired
	}
	return err
}

func (c *Conn) writeMessageLocked(binary bool, p []byte) error {
	if c.werr != nil {
		return c.werr
	}
	if c.closeSent {
		return fmt.Errorf("a close frame was sent already: %w", net.ErrClosed)
	}
	op := byte(opBinary)
	if !binary {
		op = opText
		if c.role == Server {
			var send bool
			if p, send = c.text.cut(p); !send {
				return nil
			}
		}
	}
	if err := c.writeFrameLocked(op, p); err != nil {
		c.werr = err
		return err
	}
	return nil
}

// writeFrameLocked writes one FIN frame. The caller holds wmu. Client
// frames are masked into c.wbuf, never in p.
func (c *Conn) writeFrameLocked(op byte, p []byte) error {
	masked := c.role == Client
	var key [4]byte
	if masked {
		key = c.newMaskKey()
	}
	if c.wbuf == nil {
		c.wbuf = make([]byte, 0, maxHeaderSize+min(len(p), writeChunk))
	}
	buf := appendHeader(c.wbuf[:0], op, len(p), masked, key)
	defer func() {
		if cap(buf) <= maxHeaderSize+writeChunk {
			c.wbuf = buf[:0]
		}
	}()
	if !masked && !c.split && len(p) > 0 {
		if _, ok := c.rw.(*net.TCPConn); ok {
			// One writev(2): the header and the payload, uncopied.
			bufs := net.Buffers{buf, p}
			_, err := bufs.WriteTo(c.rw)
			return err
		}
	}
	if c.split || (!masked && len(p) > writeChunk) {
		if _, err := c.rw.Write(buf); err != nil {
			return err
		}
		buf = buf[:0]
		if !masked {
			if len(p) == 0 {
				return nil
			}
			_, err := c.rw.Write(p)
			return err
		}
	}
	// buf holds the header unless it went out already. Copy the payload
	// after it, mask the copy, and write, a chunk at a time.
	for off := 0; ; {
		n := min(len(p)-off, writeChunk)
		start := len(buf)
		buf = append(buf, p[off:off+n]...)
		if masked {
			ws.Cipher(buf[start:], key, off)
		}
		if len(buf) > 0 {
			if _, err := c.rw.Write(buf); err != nil {
				return err
			}
		}
		off += n
		buf = buf[:0]
		if off >= len(p) {
			return nil
		}
	}
}

// newMaskKey returns a fresh masking key from crypto/rand (read 64 bytes at
// a time), or from the test hook.
func (c *Conn) newMaskKey() [4]byte {
	if c.maskKey != nil {
		return c.maskKey()
	}
	if c.nrnd < 4 {
		rand.Read(c.rnd[:])
		c.nrnd = len(c.rnd)
	}
	var k [4]byte
	copy(k[:], c.rnd[len(c.rnd)-c.nrnd:])
	c.nrnd -= 4
	return k
}
