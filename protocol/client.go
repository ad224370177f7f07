package protocol

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"
)

// Client defaults and limits.
const (
	// MaxGetWindow is the largest useful ClientOptions.GetWindow; larger
	// values are clamped to it (see Client.Get for why).
	MaxGetWindow = 3
	// DefaultGetWindow is the GET window used when ClientOptions.GetWindow
	// is 0.
	DefaultGetWindow = MaxGetWindow
	// DefaultTerminalBuffer is the terminal buffer used when
	// ClientOptions.TerminalBuffer is 0.
	DefaultTerminalBuffer = 1 << 20
	// maxPendingBinary bounds the binary bytes the client holds that no
	// operation has consumed yet. A device sends at most a few chunks
	// ahead, so more than this is a protocol error.
	maxPendingBinary = 1 << 20
)

// Markers the client looks for in the text stream while logging in.
const (
	promptMarker    = ": "
	connectedMarker = "WebREPL connected"
	deniedMarker    = "Access denied"
	// connectedTrailer follows connectedMarker in the device's banner; the
	// client drops it so that the terminal stream starts with the prompt.
	connectedTrailer = "\r\n"
)

// ClientOptions configures Login. A nil *ClientOptions and the zero value
// both mean all defaults. Login does not modify or keep the caller's copy.
type ClientOptions struct {
	// GetWindow is the number of GET acks kept in flight. 0 means
	// DefaultGetWindow (3, the fastest setting that is safe with real
	// firmware); 1 sends one ack per chunk, byte for byte like the
	// reference client webrepl_cli.py; values above MaxGetWindow are
	// clamped to it. Negative values are an error.
	GetWindow int
	// TerminalBuffer is how much unread terminal output (bytes) the client
	// keeps. 0 means DefaultTerminalBuffer (1 MiB). When it is full the
	// oldest output is dropped (and logged). Negative values are an error.
	TerminalBuffer int
	// Logf receives debug messages. nil discards them. The password and
	// file contents are never logged.
	Logf func(format string, args ...any)
}

type clientConfig struct {
	window  int
	termMax int
	logf    func(string, ...any)
}

func (o *ClientOptions) config() (clientConfig, error) {
	var opts ClientOptions
	if o != nil {
		opts = *o
	}
	cfg := clientConfig{window: opts.GetWindow, termMax: opts.TerminalBuffer, logf: opts.Logf}
	switch {
	case cfg.window < 0:
		return cfg, fmt.Errorf("GetWindow %d is negative", cfg.window)
	case cfg.window == 0:
		cfg.window = DefaultGetWindow
	case cfg.window > MaxGetWindow:
		cfg.window = MaxGetWindow
	}
	switch {
	case cfg.termMax < 0:
		return cfg, fmt.Errorf("TerminalBuffer %d is negative", cfg.termMax)
	case cfg.termMax == 0:
		cfg.termMax = DefaultTerminalBuffer
	}
	if cfg.logf == nil {
		cfg.logf = func(string, ...any) {}
	}
	return cfg, nil
}

// Client is a logged-in WebREPL session, seen from the client side: a
// terminal (Read and Write) and the file operations Put, Get and Version.
//
// Concurrency: all methods may be called from any goroutine. File
// operations run one at a time (a second one waits for the first);
// terminal reads and writes may run at the same time as a file operation
// and as each other. The Client owns one goroutine that reads the link
// for as long as it is open and sorts what arrives: text into the terminal
// buffer, binary data to the running file operation. Terminal output is
// buffered whether or not anyone reads it; past ClientOptions.TerminalBuffer
// the oldest is dropped, so a caller that never reads loses old output but
// never stalls file transfers. Close closes the link and waits for that
// goroutine.
//
// Cancellation: a file operation whose ctx ends while it waits for another
// operation returns ctx's error and changes nothing; once it has sent its
// request, the session's state is unknown, so it closes the client.
type Client struct {
	link  Link
	cfg   clientConfig
	opSem chan struct{} // holds a token while a file operation runs
	done  chan struct{} // closed when the read loop has returned

	mu      sync.Mutex
	wake    chan struct{} // closed and replaced when any field below changes
	term    []byte        // unread terminal output
	strip   string        // rest of the banner trailer still to drop from term
	dropped int64         // terminal bytes dropped so far
	bin     []byte        // binary bytes not consumed yet
	binBase []byte        // the buffer bin starts in when it was last empty
	err     error         // why the session ended; nil while it runs
	byPeer  bool          // err came from the link, not from this side
}

// Login logs in to a device over link: it waits for the password prompt
// (": " in the text stream), sends password+"\r" in one text message, and
// waits for "WebREPL connected" (success) or "Access denied". Output that
// follows the banner (normally ">>> ") is the start of the terminal stream.
//
// Login takes ownership of link: the returned Client closes it, and Login
// closes it itself when it fails. A device that refuses the password, or
// that drops the connection after the password was sent, gives an error
// matching ErrAccessDenied. ctx bounds the whole login; a cancelled ctx
// closes the link. A device never times out a login, so give ctx a
// deadline.
func Login(ctx context.Context, link Link, password string, opts *ClientOptions) (*Client, error) {
	cfg, err := opts.config()
	if err != nil {
		link.Close()
		return nil, wrap("login", err)
	}
	rest, err := login(ctx, link, password, cfg.logf)
	if err != nil {
		link.Close()
		return nil, wrap("login", err)
	}
	c := &Client{
		link:  link,
		cfg:   cfg,
		opSem: make(chan struct{}, 1),
		done:  make(chan struct{}),
		wake:  make(chan struct{}),
		strip: connectedTrailer,
	}
	c.appendTerminalLocked(rest) // no other goroutine yet
	go c.readLoop()
	return c, nil
}

// login runs the password exchange and returns the text that followed the
// "WebREPL connected" marker.
func login(ctx context.Context, link Link, password string, logf func(string, ...any)) ([]byte, error) {
	if strings.ContainsAny(password, "\r\n") {
		return nil, errors.New("the password contains a line break, which would end it early on the device")
	}
	var buf []byte
	read := func(stage string) error {
		for {
			binary, p, err := link.ReadMessage(ctx)
			if err != nil {
				if ctxErr := ctx.Err(); ctxErr != nil {
					return ctxErr
				}
				return fmt.Errorf("%s: %w", stage, err)
			}
			if binary {
				logf("webrepl: login: ignoring a %d-byte binary message", len(p))
				continue
			}
			buf = append(buf, p...)
			return nil
		}
	}

	// Wait for the prompt.
	for {
		if i := bytes.Index(buf, []byte(promptMarker)); i >= 0 {
			buf = buf[i+len(promptMarker):]
			break
		}
		buf = keepTail(buf, len(promptMarker)-1)
		if err := read("no password prompt"); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: %w", ErrBusy, err)
			}
			return nil, err
		}
	}
	logf("webrepl: login: got the password prompt, sending the password")
	if err := link.WriteMessage(ctx, false, []byte(password+"\r")); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("sending the password: %w", err)
	}

	// Wait for the verdict.
	for {
		ok := bytes.Index(buf, []byte(connectedMarker))
		denied := bytes.Index(buf, []byte(deniedMarker))
		if denied >= 0 && (ok < 0 || denied < ok) {
			return nil, fmt.Errorf("%w: the device answered %q", ErrAccessDenied, deniedMarker)
		}
		if ok >= 0 {
			logf("webrepl: login: logged in")
			return buf[ok+len(connectedMarker):], nil
		}
		buf = keepTail(buf, len(connectedMarker)-1)
		if err := read("the device closed the connection after the password was sent"); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", ErrAccessDenied, err)
		}
	}
}

// keepTail returns the last n bytes of b in a new slice (or b itself if it
// is no longer), so that a marker split across messages is still found.
func keepTail(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append([]byte(nil), b[len(b)-n:]...)
}

// readLoop owns the link's read side until the link ends.
func (c *Client) readLoop() {
	defer close(c.done)
	for {
		binary, p, err := c.link.ReadMessage(context.Background())
		if err != nil {
			c.fail(err, true)
			return
		}
		c.mu.Lock()
		var perr error
		if binary {
			if len(c.bin) == 0 {
				c.bin = append(c.binBase[:0], p...) // reuse the buffer
				c.binBase = c.bin
			} else {
				c.bin = append(c.bin, p...)
			}
			if len(c.bin) > maxPendingBinary {
				perr = protocolErrorf("the device sent %d bytes of binary data that no operation asked for", len(c.bin))
			}
		} else {
			c.appendTerminalLocked(p)
		}
		c.wakeLocked()
		c.mu.Unlock()
		if perr != nil {
			c.cfg.logf("%v", perr)
			c.fail(perr, false)
		}
	}
}

// wakeLocked wakes every goroutine waiting for a change. c.mu is held.
func (c *Client) wakeLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// appendTerminalLocked adds terminal output, dropping the rest of the
// login banner and, past the limit, the oldest output. c.mu is held.
func (c *Client) appendTerminalLocked(p []byte) {
	for len(c.strip) > 0 && len(p) > 0 {
		if p[0] != c.strip[0] {
			c.strip = ""
			break
		}
		p, c.strip = p[1:], c.strip[1:]
	}
	if len(p) == 0 {
		return
	}
	c.strip = ""
	c.term = append(c.term, p...)
	if over := len(c.term) - c.cfg.termMax; over > 0 {
		c.term = append(c.term[:0], c.term[over:]...)
		c.dropped += int64(over)
		c.cfg.logf("webrepl: terminal buffer full: dropped %d bytes of old output (%d so far)", over, c.dropped)
	}
}

// fail ends the session with err (the first reason wins) and closes the
// link. byPeer says the link itself failed or ended.
func (c *Client) fail(err error, byPeer bool) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		c.byPeer = byPeer
		c.wakeLocked()
	}
	c.mu.Unlock()
	c.link.Close()
}

var (
	errClientClosed = fmt.Errorf("the client is closed: %w", net.ErrClosed)
	errInterrupted  = fmt.Errorf("the session was closed because an operation was interrupted: %w", net.ErrClosed)
)

// endErrLocked describes c.err for a file operation. c.mu is held.
func (c *Client) endErrLocked() error {
	if !c.byPeer {
		return c.err
	}
	const msg = "device closed the connection (a real device does this on any file error, e.g. a missing file)"
	if errors.Is(c.err, io.EOF) || errors.Is(c.err, io.ErrUnexpectedEOF) {
		return fmt.Errorf(msg+": %w", io.ErrUnexpectedEOF)
	}
	return fmt.Errorf(msg+": %w: %w", io.ErrUnexpectedEOF, c.err)
}

// Done returns a channel that is closed when the link has ended, whatever
// the reason (Close, the device leaving, an interrupted operation).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the session ended, or nil while it is running.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the link and waits for the client's read goroutine. Pending
// calls return errors wrapping net.ErrClosed. Unread terminal output stays
// readable. Close is idempotent and always returns nil.
func (c *Client) Close() error {
	c.fail(errClientClosed, false)
	<-c.done
	return nil
}

// Read reads terminal output: the payloads of the device's text messages,
// joined into one byte stream (they are not UTF-8 checked or split on
// character boundaries). It blocks until some output is there and returns
// io.EOF once the link has ended and everything buffered has been read.
func (c *Client) Read(p []byte) (int, error) {
	return c.ReadContext(context.Background(), p)
}

// ReadContext is Read with a bound on the wait. When ctx ends first it
// returns ctx.Err(); this does not close the client, because no link I/O is
// interrupted (the read only waits for the buffer).
func (c *Client) ReadContext(ctx context.Context, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		c.mu.Lock()
		if len(c.term) > 0 {
			n := copy(p, c.term)
			c.term = c.term[n:]
			if len(c.term) == 0 {
				c.term = nil
			}
			c.mu.Unlock()
			return n, nil
		}
		if c.err != nil {
			c.mu.Unlock()
			return 0, io.EOF
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Write sends p to the device's REPL as terminal input, in one text
// message. A real device cannot receive messages over 65535 bytes, so
// longer input is sent as several messages.
func (c *Client) Write(p []byte) (int, error) {
	return c.WriteContext(context.Background(), p)
}

// WriteContext is Write bounded by ctx. A cancelled ctx closes the client
// (the link may hold a partial message).
func (c *Client) WriteContext(ctx context.Context, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m := min(len(p)-n, MaxMessageSize)
		if err := c.link.WriteMessage(ctx, false, p[n:n+m]); err != nil {
			if ctx.Err() != nil {
				c.fail(errInterrupted, false)
				return n, wrap("terminal write", ctx.Err())
			}
			return n, wrap("terminal write", err)
		}
		n += m
	}
	return n, nil
}

// checkFileName is CheckName plus a refusal of the empty name.
func checkFileName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: the name is empty", ErrBadName)
	}
	return CheckName(name)
}

// wrapOp gives a file operation's error its context. A *StatusError
// already has it.
func wrapOp(err *error, op Op, name string) {
	if *err == nil {
		return
	}
	if _, ok := (*err).(*StatusError); ok {
		return
	}
	*err = &OpError{Op: op, Name: name, Err: *err}
}

// begin waits for the right to run a file operation. If ctx ends while it
// waits, nothing has been sent and the client stays open.
func (c *Client) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case c.opSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.endErrLocked()
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.endErrLocked()
		c.mu.Unlock()
		c.end()
		return err
	}
	stale := len(c.bin)
	c.mu.Unlock()
	if stale > 0 {
		err := protocolErrorf("the device sent %d bytes of binary data that no operation asked for", stale)
		c.fail(err, false)
		c.end()
		return err
	}
	return nil
}

// end releases the right to run a file operation.
func (c *Client) end() { <-c.opSem }

// abort closes the client because ctx ended during an operation, and
// returns the operation's error.
func (c *Client) abort(ctx context.Context) error {
	c.fail(errInterrupted, false)
	return fmt.Errorf("%w (the client is closed: an interrupted transfer cannot be resumed)", ctx.Err())
}

// linkErr turns an error from a link write into the operation's error.
func (c *Client) linkErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return c.abort(ctx)
	}
	c.fail(err, true)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErrLocked()
}

// send sends one binary message.
func (c *Client) send(ctx context.Context, p []byte) error {
	if ctx.Err() != nil {
		return c.abort(ctx)
	}
	if err := c.link.WriteMessage(ctx, true, p); err != nil {
		return c.linkErr(ctx, err)
	}
	return nil
}

// recv fills dst from the binary byte stream.
func (c *Client) recv(ctx context.Context, dst []byte) error {
	for {
		c.mu.Lock()
		if len(c.bin) >= len(dst) {
			copy(dst, c.bin)
			c.bin = c.bin[len(dst):]
			c.mu.Unlock()
			return nil
		}
		if c.err != nil {
			err := c.endErrLocked()
			c.mu.Unlock()
			return err
		}
		wake := c.wake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return c.abort(ctx)
		}
	}
}

// recvStatus reads a "WB" reply. A malformed reply closes the client (the
// byte stream is out of step); a non-zero status is a *StatusError.
func (c *Client) recvStatus(ctx context.Context, op Op, name string) error {
	var b [ReplySize]byte
	if err := c.recv(ctx, b[:]); err != nil {
		return err
	}
	status, err := DecodeReply(b[:])
	if err != nil {
		c.fail(err, false)
		return err
	}
	if status != 0 {
		return &StatusError{Op: op, Name: name, Code: status}
	}
	return nil
}

// Put stores size bytes read from r as the device file name. It sends the
// request in one binary message, waits for the device's "WB" status, sends
// the data in binary messages of exactly PutFrameSize bytes (the last one
// shorter; real devices lose bytes when frame sizes vary), and waits for
// the final status. progress, if not nil, is called with the bytes sent so
// far after each message.
//
// r is streamed, never held whole; size must be 0 to 4294967295. If r ends
// before size bytes, or fails, Put closes the client: the device is left
// waiting for bytes that cannot come. A non-zero status is a *StatusError
// and leaves the session usable. A cancelled ctx closes the client; it
// does not interrupt a blocked r.Read.
func (c *Client) Put(ctx context.Context, name string, r io.Reader, size int64, progress func(done int64)) (err error) {
	defer wrapOp(&err, OpPut, name)
	if err := checkFileName(name); err != nil {
		return err
	}
	if size < 0 || size > math.MaxUint32 {
		return fmt.Errorf("size %d is out of range: a request holds 0 to %d", size, uint32(math.MaxUint32))
	}
	req, err := AppendRequest(make([]byte, 0, RequestSize), Request{Op: OpPut, Size: uint32(size), Name: name})
	if err != nil {
		return err
	}
	if err := c.begin(ctx); err != nil {
		return err
	}
	defer c.end()
	if err := c.send(ctx, req); err != nil {
		return err
	}
	if err := c.recvStatus(ctx, OpPut, name); err != nil {
		return err
	}
	buf := make([]byte, min(size, PutFrameSize))
	var done int64
	for done < size {
		n := int(min(size-done, PutFrameSize))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			c.fail(errInterrupted, false)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading the data after %d of %d bytes: %w (the client is closed: the device still waits for the rest)", done, size, err)
		}
		if err := c.send(ctx, buf[:n]); err != nil {
			return err
		}
		done += int64(n)
		if progress != nil {
			progress(done)
		}
	}
	return c.recvStatus(ctx, OpPut, name)
}

// Get reads the device file name and writes it to w. It returns the number
// of bytes written to w. progress, if not nil, is called with the bytes
// received so far after each chunk.
//
// The device sends one chunk (up to ChunkSize bytes) per one-byte ack. To
// hide the round trip, Get keeps ClientOptions.GetWindow acks in flight:
// it sends W acks up front and one more per chunk received. The device
// answers the first ack after the last data chunk with the end-of-file
// chunk and the final status, so exactly W-1 acks are left over. A real
// device reads those bytes as the start of its next 82-byte request. It
// does not check the "WA" signature (bytes 0 and 1), so for W <= 3 the
// leftover zeros fit there, and Get completes the request with the
// remaining 82-(W-1) bytes of a GET_VER (op 3 at offset 2, zeros
// elsewhere), then reads and discards the 3-byte version answer. With
// W >= 4 a zero would land on the op byte and a real device would be stuck
// for the rest of the session; that is why the window stops at 3. W = 1
// sends exactly what the reference client sends.
//
// A non-zero status is a *StatusError and leaves the session usable. If w
// fails, Get still drains the transfer, so the session stays usable, and
// returns w's error. A cancelled ctx closes the client (the transfer state
// is lost) and the error wraps ctx.Err().
func (c *Client) Get(ctx context.Context, name string, w io.Writer, progress func(done int64)) (n int64, err error) {
	defer wrapOp(&err, OpGet, name)
	if err := checkFileName(name); err != nil {
		return 0, err
	}
	req, err := AppendRequest(make([]byte, 0, RequestSize), Request{Op: OpGet, Name: name})
	if err != nil {
		return 0, err
	}
	if err := c.begin(ctx); err != nil {
		return 0, err
	}
	defer c.end()
	if err := c.send(ctx, req); err != nil {
		return 0, err
	}
	if err := c.recvStatus(ctx, OpGet, name); err != nil {
		return 0, err
	}
	window := c.cfg.window
	ack := []byte{0}
	for range window {
		if err := c.send(ctx, ack); err != nil {
			return 0, err
		}
	}
	var (
		hdr      [ChunkHeaderSize]byte
		buf      = make([]byte, ChunkSize)
		received int64
		werr     error
	)
	for {
		if err := c.recv(ctx, hdr[:]); err != nil {
			return n, err
		}
		size, _ := DecodeChunkHeader(hdr[:])
		if size == 0 {
			break
		}
		if size > len(buf) {
			buf = make([]byte, size)
		}
		if err := c.recv(ctx, buf[:size]); err != nil {
			return n, err
		}
		if err := c.send(ctx, ack); err != nil { // ack first: it overlaps the device's work with ours
			return n, err
		}
		received += int64(size)
		if werr == nil {
			var m int
			m, werr = w.Write(buf[:size])
			n += int64(m)
		}
		if progress != nil {
			progress(received)
		}
	}
	if window > 1 {
		if err := c.send(ctx, getVersionTail(window-1)); err != nil {
			return n, err
		}
	}
	statusErr := c.recvStatus(ctx, OpGet, name)
	if _, ok := statusErr.(*StatusError); statusErr != nil && !ok {
		return n, statusErr
	}
	if window > 1 {
		var vb [VersionSize]byte
		if err := c.recv(ctx, vb[:]); err != nil {
			return n, err
		}
		v, _ := DecodeVersion(vb[:])
		c.cfg.logf("webrepl: get %s: %d bytes; the window's closing GET_VER says version %v", name, received, v)
	}
	if statusErr != nil {
		return n, statusErr
	}
	if werr != nil {
		return n, fmt.Errorf("writing the local copy: %w", werr)
	}
	return n, nil
}

// Version asks the device for its firmware version (GET_VER).
func (c *Client) Version(ctx context.Context) (v Version, err error) {
	defer wrapOp(&err, OpGetVersion, "")
	req, err := AppendRequest(make([]byte, 0, RequestSize), Request{Op: OpGetVersion})
	if err != nil {
		return Version{}, err
	}
	if err := c.begin(ctx); err != nil {
		return Version{}, err
	}
	defer c.end()
	if err := c.send(ctx, req); err != nil {
		return Version{}, err
	}
	var b [VersionSize]byte
	if err := c.recv(ctx, b[:]); err != nil {
		return Version{}, err
	}
	return DecodeVersion(b[:])
}
