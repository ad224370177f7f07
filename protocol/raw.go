package protocol

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Bytes and texts of MicroPython's raw REPL (shared/runtime/pyexec.c).
const (
	rawCtrlA = 0x01 // friendly: enter raw mode; raw: reprint the banner (or start raw-paste)
	rawCtrlB = 0x02 // raw: back to the friendly REPL
	rawCtrlC = 0x03 // interrupt running code; raw: clear the input buffer
	rawCtrlD = 0x04 // raw: run the buffer (soft reset if empty); end-of-part marker in answers
	rawCtrlE = 0x05 // raw-paste request, with 'A' and Ctrl-A

	rawBanner      = "raw REPL; CTRL-B to exit" // then a line end and the prompt ">"
	rawSoftReboot  = "soft reboot"              // MCU ports print "MPY: soft reboot" on a soft reset
	rawPasteAsk    = "\x05A\x01"
	rawMaxStderr   = 64 << 10 // keep at most this much of an exception text (its end)
	rawReadBufSize = 4096
)

// Defaults of RawOptions.
const (
	DefaultRawSilence    = 10 * time.Second
	DefaultRawChunkSize  = 256
	DefaultRawChunkDelay = 10 * time.Millisecond

	defaultRawQuiet    = 100 * time.Millisecond // drain: stop after this long without input
	defaultRawDrainMax = 2 * time.Second        // drain: stop after this long in any case
)

// Raw-paste states (Raw.paste).
const (
	rawPasteUnknown int32 = iota // not tried yet
	rawPasteOn                   // the board answered R\x01
	rawPasteOff                  // never try (NoRawPaste, R\x00, or old firmware)
)

// RawOptions configures EnterRaw. A nil *RawOptions and the zero value
// mean the defaults; EnterRaw does not change the caller's copy.
type RawOptions struct {
	// SoftReset soft-resets the board after entering raw mode: Ctrl-D on
	// the empty raw line, then the board prints "soft reboot" and, as MCU
	// ports stay in raw mode across the reset, the raw banner again. This
	// gives a fresh interpreter (and skips main.py). The unix port exits
	// on a soft reset instead, so do not set it there.
	SoftReset bool

	// NoRawPaste never tries raw-paste mode and always sends code the
	// plain raw way, ChunkSize bytes at a time.
	NoRawPaste bool

	// Silence is the longest the board may stay silent while an answer
	// that must come is awaited: the raw banner, "soft reboot", "OK", the
	// raw-paste answer, window and credits, the acknowledgement of the end
	// of a paste, the prompt after the output. Zero means
	// DefaultRawSilence (10 s); negative is an error. When it is exceeded
	// the operation fails with an error that matches ErrNoResponse and
	// os.ErrDeadlineExceeded, and the Raw becomes unusable (see Raw).
	//
	// It does not apply while the output of running code is followed:
	// code may legitimately be silent for as long as it likes, and only
	// the ctx of Exec bounds that. It also bounds, as a total, the attempt
	// to get the board back to the prompt after a ctx is cancelled.
	Silence time.Duration

	// ChunkSize is, in plain raw mode (no raw-paste), how many bytes of
	// code are written at a time. Zero means DefaultRawChunkSize (256, as
	// mpremote); negative is an error.
	ChunkSize int

	// ChunkDelay is, in plain raw mode, the pause between two chunks, so
	// that a board with a small input buffer (a UART ring of 256 bytes, a
	// WebREPL session feeding dupterm) keeps up; plain raw mode has no
	// flow control. Zero means DefaultRawChunkDelay (10 ms, as mpremote);
	// negative means no pause. Raw-paste mode has flow control and never
	// pauses.
	ChunkDelay time.Duration

	// Logf, if not nil, receives a line for each notable step (raw-paste
	// negotiated or refused, early aborts, interrupts). It must not block.
	Logf func(format string, args ...any)

	// quiet replaces defaultRawQuiet (tests).
	quiet time.Duration
}

// rawConfig is RawOptions with the defaults filled in.
type rawConfig struct {
	softReset  bool
	noRawPaste bool
	silence    time.Duration
	chunkSize  int
	chunkDelay time.Duration // <= 0: no pause
	quiet      time.Duration
	drainMax   time.Duration
	logf       func(string, ...any)
}

func (o *RawOptions) config() (rawConfig, error) {
	var opts RawOptions
	if o != nil {
		opts = *o
	}
	c := rawConfig{
		softReset:  opts.SoftReset,
		noRawPaste: opts.NoRawPaste,
		silence:    opts.Silence,
		chunkSize:  opts.ChunkSize,
		chunkDelay: opts.ChunkDelay,
		quiet:      opts.quiet,
		logf:       opts.Logf,
	}
	switch {
	case c.silence < 0:
		return c, fmt.Errorf("%sraw options: negative Silence %v", errPrefix, c.silence)
	case c.chunkSize < 0:
		return c, fmt.Errorf("%sraw options: negative ChunkSize %d", errPrefix, c.chunkSize)
	}
	if c.silence == 0 {
		c.silence = DefaultRawSilence
	}
	if c.chunkSize == 0 {
		c.chunkSize = DefaultRawChunkSize
	}
	if c.chunkDelay == 0 {
		c.chunkDelay = DefaultRawChunkDelay
	}
	if c.quiet <= 0 {
		c.quiet = defaultRawQuiet
	}
	c.drainMax = min(defaultRawDrainMax, c.silence)
	if c.logf == nil {
		c.logf = func(string, ...any) {}
	}
	return c, nil
}

// Raw drives a board's raw REPL over a byte stream: a serial port, a TCP
// connection, or the terminal channel of a WebREPL session (a *Client).
// Create it with EnterRaw; give the stream back to its other users with
// Exit.
//
// Concurrency: one operation at a time. The methods may be called from
// several goroutines; they take turns (RawPaste never waits).
//
// Reading: while an operation runs, the Raw owns the reads of the
// stream, and nobody else may read it. It starts no background reader
// that outlives its operations. Bytes it read past the end of an answer
// are kept for the next operation (Exit drops them).
//
// If the stream has a SetReadDeadline(time.Time) error method (net.Conn,
// some *os.File) the Raw uses it to bound reads by Silence and ctx, and
// clears the deadline when each operation ends. Otherwise each wait runs
// the stream's Read in a helper goroutine; when the wait gives up (Silence
// exceeded, ctx cancelled) that Read stays pending until the stream
// delivers data or is closed.
//
// Failures: an operation that fails because of the stream or the board
// (Silence exceeded, a protocol error, the stream ended, a cancelled ctx
// that could not be recovered from) leaves the Raw unusable: later
// operations fail with an error wrapping the first one. Interrupt may
// bring it back; otherwise the owner closes the stream, which also ends a
// pending Read. An *ExecError (the code raised) and a failed write to the
// stdout writer do not make it unusable, nor does a cancelled ctx after
// which the board came back to the prompt.
//
// Writes to the stream are plain Write calls, which a ctx cannot
// interrupt; a stream whose writes can block forever must be closed by its
// owner to unblock them.
type Raw struct {
	rw  io.ReadWriter
	cfg rawConfig

	paste atomic.Int32 // rawPaste*; read by RawPaste without mu

	mu     sync.Mutex // one operation at a time; guards the fields below
	in     *rawInput
	err    error // why the Raw is unusable, or nil
	exited bool
}

// EnterRaw puts the board behind rw into raw REPL mode, the way mpremote
// does: it writes "\r\x03" (interrupting whatever runs), discards what
// the board prints until it is quiet for a moment, writes "\r\x01" and
// waits for the banner "raw REPL; CTRL-B to exit" and the prompt ">".
// Anything before the banner (boot messages, binary noise) is ignored;
// lines may end in "\n" or "\r\n". With opts.SoftReset it then
// soft-resets the board and waits for the banner again.
//
// ctx bounds the whole entry; a cancelled ctx, a board silent for longer
// than opts.Silence or a stream error fails it. On failure rw may still
// have a Read pending (see Raw); the caller should close it.
func EnterRaw(ctx context.Context, rw io.ReadWriter, opts *RawOptions) (*Raw, error) {
	cfg, err := opts.config()
	if err != nil {
		return nil, err
	}
	r := &Raw{rw: rw, cfg: cfg, in: newRawInput(rw)}
	if cfg.noRawPaste {
		r.paste.Store(rawPasteOff)
	}
	defer r.in.clearDeadline()
	if err := ctx.Err(); err != nil {
		return nil, wrap("raw enter", err)
	}
	cfg.logf("raw: entering the raw REPL")
	if err := r.sync(ctx, "\r\x03", "\r\x01"); err != nil {
		return nil, wrap("raw enter", err)
	}
	if cfg.softReset {
		if err := r.softReset(ctx); err != nil {
			return nil, wrap("raw enter", err)
		}
	}
	return r, nil
}

// RawPaste reports whether Exec uses raw-paste mode: true once the board
// has accepted it (so not before the first Exec), false if it has not
// been tried yet or the board cannot do it.
func (r *Raw) RawPaste() bool { return r.paste.Load() == rawPasteOn }

// Exec runs code on the board and copies what it prints to stdout (nil
// discards it) as it arrives. It returns an *ExecError if the code raised
// an exception (the output before it has been written to stdout).
//
// The code is sent with raw-paste mode (flow-controlled by the board)
// unless the board or RawOptions.NoRawPaste rules it out; then in plain
// raw mode, ChunkSize bytes at a time with ChunkDelay pauses. Code cannot
// contain the bytes 0x03 and 0x04 (Ctrl-C, Ctrl-D): such code is refused
// with an error matching fs.ErrInvalid. Empty code is sent as "\n", as
// an empty raw buffer would soft-reset the board. Lines should end in
// "\n".
//
// If ctx is cancelled while the code runs, Exec interrupts it (Ctrl-C),
// waits (at most Silence in all) for the board to come back to the raw
// prompt, and returns an error wrapping ctx.Err(). If ctx is cancelled
// while the code is being sent, it does the same with Ctrl-C and Ctrl-A.
//
// If the code ends with a soft reset (sys.exit()), Exec waits for the raw
// banner that MCU ports print afterwards and returns nil.
func (r *Raw) Exec(ctx context.Context, code []byte, stdout io.Writer) error {
	if i := bytes.IndexAny(code, "\x03\x04"); i >= 0 {
		return wrap("raw exec", fmt.Errorf("code has byte %#02x at offset %d; Ctrl-C and Ctrl-D cannot be sent: %w", code[i], i, fs.ErrInvalid))
	}
	if len(code) == 0 {
		code = []byte("\n")
	}
	if stdout == nil {
		stdout = io.Discard
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(); err != nil {
		return wrap("raw exec", err)
	}
	if err := ctx.Err(); err != nil {
		return wrap("raw exec", err)
	}
	defer r.in.clearDeadline()

	var f rawFollow
	following := false
	err := r.send(ctx, code)
	if err == nil {
		following = true
		err = r.follow(ctx, &f, stdout)
	}
	if err != nil {
		return wrap("raw exec", r.failed(ctx, err, &f, following))
	}
	if f.werr != nil {
		return wrap("raw exec", fmt.Errorf("writing the output: %w", f.werr))
	}
	if len(f.stderr) > 0 {
		return parseExecError(f.stderr)
	}
	return nil
}

// ExecCapture runs code like Exec and returns what it printed (also when
// it fails).
func (r *Raw) ExecCapture(ctx context.Context, code []byte) ([]byte, error) {
	var b bytes.Buffer
	err := r.Exec(ctx, code, &b)
	return b.Bytes(), err
}

// Eval runs print(repr(EXPR)) and returns what it printed without the
// line end: the repr of the value, e.g. "3", "'abc'", "b'\\x00'".
func (r *Raw) Eval(ctx context.Context, expr string) ([]byte, error) {
	out, err := r.ExecCapture(ctx, []byte("print(repr("+expr+"))"))
	if err != nil {
		return nil, err
	}
	out = bytes.TrimSuffix(out, []byte("\n"))
	out = bytes.TrimSuffix(out, []byte("\r"))
	return out, nil
}

// Interrupt sends Ctrl-C (stopping code that runs, such as code started
// by someone else), discards what the board prints until it is quiet,
// then sends Ctrl-A and waits for the raw banner and prompt. It works
// from the friendly REPL too, and makes an unusable Raw usable again if
// the board answers.
func (r *Raw) Interrupt(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exited {
		return wrap("raw interrupt", r.usable())
	}
	defer r.in.clearDeadline()
	if err := r.sync(ctx, "\x03", "\x01"); err != nil {
		r.err = err
		return wrap("raw interrupt", err)
	}
	r.err = nil
	return nil
}

// SoftReset soft-resets the board from raw mode: Ctrl-D on the empty raw
// line, then it waits for "soft reboot" and the raw banner and prompt
// (MCU ports stay in raw mode). Not for the unix port, which exits.
func (r *Raw) SoftReset(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable(); err != nil {
		return wrap("raw soft reset", err)
	}
	defer r.in.clearDeadline()
	if err := r.softReset(ctx); err != nil {
		r.err = err
		return wrap("raw soft reset", err)
	}
	return nil
}

// Exit sends "\r\x02", which takes the board back to the friendly REPL,
// and waits for nothing: the friendly banner and prompt that follow are
// left in the stream for its next reader. The Raw cannot be used after
// it; Exit again does nothing. Exit also writes on an unusable Raw, but a
// Read left pending by it would still take the next bytes.
func (r *Raw) Exit(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exited {
		return nil
	}
	r.exited = true
	r.in.clearDeadline()
	r.in.discard()
	return wrap("raw exit", r.write(ctx, []byte("\r\x02")))
}

func (r *Raw) usable() error {
	if r.exited {
		return fmt.Errorf("the raw REPL was exited: %w", net.ErrClosed)
	}
	if r.err != nil {
		return fmt.Errorf("unusable after an earlier error: %w", r.err)
	}
	return nil
}

// failed handles an error of Exec. A cancelled ctx makes it interrupt the
// board and wait for the prompt; anything else makes the Raw unusable.
func (r *Raw) failed(ctx context.Context, err error, f *rawFollow, following bool) error {
	cerr := ctx.Err()
	if cerr == nil || !errors.Is(err, cerr) {
		r.err = err
		return err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.silence)
	defer cancel()
	r.cfg.logf("raw: %v: interrupting the board", cerr)
	var rerr error
	if following {
		// The board is running the code (or has just finished): Ctrl-C
		// ends it with KeyboardInterrupt, and the rest of the answer
		// follows as usual.
		rerr = r.write(rctx, []byte{rawCtrlC})
		if rerr == nil {
			rerr = r.follow(rctx, f, io.Discard)
		}
	} else {
		rerr = r.sync(rctx, "\x03", "\x01")
	}
	if rerr != nil {
		if rctx.Err() != nil && errors.Is(rerr, rctx.Err()) {
			rerr = fmt.Errorf("%w: no prompt within %v after Ctrl-C", ErrNoResponse, r.cfg.silence)
		}
		err = fmt.Errorf("%w; and the board did not come back to the prompt: %w", cerr, rerr)
		r.err = err
		return err
	}
	return fmt.Errorf("interrupted the board: %w", cerr)
}

// sync writes interrupt, drains the input until the board is quiet,
// writes enter and waits for the raw banner and prompt.
func (r *Raw) sync(ctx context.Context, interrupt, enter string) error {
	if err := r.write(ctx, []byte(interrupt)); err != nil {
		return err
	}
	if err := r.drain(ctx); err != nil {
		return err
	}
	if err := r.write(ctx, []byte(enter)); err != nil {
		return err
	}
	return r.waitBanner(ctx)
}

func (r *Raw) softReset(ctx context.Context) error {
	r.cfg.logf("raw: soft reset")
	if err := r.write(ctx, []byte{rawCtrlD}); err != nil {
		return err
	}
	for {
		if err := r.skipPast(ctx, []byte(rawSoftReboot), `"soft reboot"`); err != nil {
			return err
		}
		ok, err := r.lineEnd(ctx, `"soft reboot"`)
		if err != nil {
			return err
		}
		if ok {
			break
		}
	}
	return r.waitBanner(ctx)
}

// send sends code and the end marker, with raw-paste if possible.
// Afterwards the board runs the code.
func (r *Raw) send(ctx context.Context, code []byte) error {
	if r.paste.Load() != rawPasteOff {
		ok, err := r.pasteStart(ctx)
		if err != nil {
			return err
		}
		if ok {
			return r.pasteWrite(ctx, code)
		}
	}
	return r.plainWrite(ctx, code)
}

// pasteStart asks for raw-paste mode and reports whether the board
// accepted. If it did not, it will not be asked again.
func (r *Raw) pasteStart(ctx context.Context) (bool, error) {
	if err := r.write(ctx, []byte(rawPasteAsk)); err != nil {
		return false, err
	}
	if err := r.need(ctx, 2, "the answer to the raw-paste request"); err != nil {
		return false, err
	}
	p := r.in.pend()
	switch {
	case p[0] == 'R' && p[1] == 1:
		r.in.consume(2)
		if r.paste.Swap(rawPasteOn) != rawPasteOn {
			r.cfg.logf("raw: raw-paste mode accepted")
		}
		return true, nil
	case p[0] == 'R' && p[1] == 0:
		// Understood but not supported; the board stays in raw mode and
		// prints the prompt again.
		r.in.consume(2)
		r.paste.Store(rawPasteOff)
		r.cfg.logf("raw: the board refused raw-paste mode (R\\x00); using plain raw mode")
		return false, r.expectPrompt(ctx, "the prompt after R\\x00")
	default:
		// Firmware without raw-paste: Ctrl-A just reprinted the banner
		// ("raw REPL; ..." of which we have read "ra").
		r.paste.Store(rawPasteOff)
		r.cfg.logf("raw: no raw-paste mode (answer %q); using plain raw mode", p[:2])
		return false, r.waitBanner(ctx)
	}
}

// pasteWrite sends code in raw-paste mode (after R\x01): it never sends
// more than the board has granted. The board first sends the window size
// (a u16 LE), which grants one window, then one \x01, which grants
// another; then one \x01 for every window it has consumed. A \x04 from
// the board means it stopped reading (a syntax error, say): we answer
// \x04 and stop. At the end we send \x04 and wait for the board's \x04.
func (r *Raw) pasteWrite(ctx context.Context, code []byte) error {
	if err := r.need(ctx, 2, "the raw-paste window size"); err != nil {
		return err
	}
	window := int(binary.LittleEndian.Uint16(r.in.pend()))
	r.in.consume(2)
	if window == 0 {
		return protocolErrorf("raw-paste window size 0")
	}
	credit := window
	aborted, err := r.flowByte(ctx, &credit, window)
	sent := 0
	for err == nil && !aborted && sent < len(code) {
		// Take credits (and aborts) that have arrived; wait for one when
		// the credit is used up.
		for err == nil && !aborted && (credit == 0 || r.in.len() > 0) {
			aborted, err = r.flowByte(ctx, &credit, window)
		}
		if err != nil || aborted {
			break
		}
		if err = ctx.Err(); err != nil {
			break
		}
		n := min(credit, len(code)-sent)
		if err = r.write(ctx, code[sent:sent+n]); err != nil {
			break
		}
		sent += n
		credit -= n
	}
	if err != nil {
		return err
	}
	if aborted {
		r.cfg.logf("raw: the board ended the raw paste after %d of %d bytes", sent, len(code))
		return r.write(ctx, []byte{rawCtrlD})
	}
	if err := r.write(ctx, []byte{rawCtrlD}); err != nil {
		return err
	}
	for {
		c, err := r.readByte(ctx, "the end of the raw paste")
		if err != nil {
			return err
		}
		switch c {
		case rawCtrlA: // a late credit
		case rawCtrlD:
			return nil
		default:
			return protocolErrorf("raw paste: got %q while waiting for the end of the paste", c)
		}
	}
}

// flowByte reads one flow-control byte of raw-paste mode.
func (r *Raw) flowByte(ctx context.Context, credit *int, window int) (aborted bool, err error) {
	c, err := r.readByte(ctx, "raw-paste flow control")
	if err != nil {
		return false, err
	}
	switch c {
	case rawCtrlA:
		*credit += window
		return false, nil
	case rawCtrlD:
		return true, nil
	}
	return false, protocolErrorf("raw paste: unexpected byte %q from the board", c)
}

// plainWrite sends code in plain raw mode and waits for "OK".
func (r *Raw) plainWrite(ctx context.Context, code []byte) error {
	for i := 0; i < len(code); i += r.cfg.chunkSize {
		if i > 0 && r.cfg.chunkDelay > 0 {
			if err := sleepContext(ctx, r.cfg.chunkDelay); err != nil {
				return err
			}
		}
		if err := r.write(ctx, code[i:min(i+r.cfg.chunkSize, len(code))]); err != nil {
			return err
		}
	}
	if err := r.write(ctx, []byte{rawCtrlD}); err != nil {
		return err
	}
	if err := r.need(ctx, 2, `"OK"`); err != nil {
		return err
	}
	if p := r.in.pend(); p[0] != 'O' || p[1] != 'K' {
		return protocolErrorf("raw REPL: expected \"OK\" after the code, got %q", p[:2])
	}
	r.in.consume(2)
	return nil
}

// rawFollow is where reading an answer has got to, so that it can go on
// after an interrupt.
type rawFollow struct {
	part   int    // 0: stdout, 1: exception text, 2: the prompt
	stderr []byte // the exception text (its last rawMaxStderr bytes)
	werr   error  // the first error writing stdout
}

func (f *rawFollow) addStderr(p []byte) {
	f.stderr = append(f.stderr, p...)
	if len(f.stderr) > rawMaxStderr {
		f.stderr = append([]byte(nil), f.stderr[len(f.stderr)-rawMaxStderr:]...)
	}
}

// follow reads the answer to code: stdout up to \x04 (copied to w), the
// exception text up to \x04, then the prompt.
func (r *Raw) follow(ctx context.Context, f *rawFollow, w io.Writer) error {
	for f.part < 2 {
		if r.in.len() == 0 {
			// No Silence here: running code may be quiet for long.
			if err := r.fill(ctx, 0, "the output of the code"); err != nil {
				return err
			}
		}
		p := r.in.pend()
		i := bytes.IndexByte(p, rawCtrlD)
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if f.part == 0 {
			if len(chunk) > 0 && f.werr == nil {
				_, f.werr = w.Write(chunk)
			}
		} else {
			f.addStderr(chunk)
		}
		if i < 0 {
			r.in.consume(len(p))
			continue
		}
		r.in.consume(i + 1)
		f.part++
	}
	c, err := r.peekByte(ctx, "the prompt after the output")
	if err != nil {
		return err
	}
	if c == '>' {
		r.in.consume(1)
		f.part++
		return nil
	}
	// sys.exit() soft-resets the board right after the two \x04; MCU
	// ports then print "soft reboot" and the raw banner.
	r.cfg.logf("raw: %q instead of the prompt: the board is resetting (sys.exit?)", c)
	if err := r.waitBanner(ctx); err != nil {
		return err
	}
	f.part++
	return nil
}

// write writes p unless ctx is done.
func (r *Raw) write(ctx context.Context, p []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := r.rw.Write(p); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// drain discards input until the board has been quiet for cfg.quiet (or
// for cfg.drainMax in all).
func (r *Raw) drain(ctx context.Context) error {
	end := time.Now().Add(r.cfg.drainMax)
	for {
		r.in.discard()
		q := min(r.cfg.quiet, time.Until(end))
		if q <= 0 {
			return nil
		}
		err := r.in.fill(ctx, q)
		if errors.Is(err, errRawSilent) {
			return nil
		}
		if err != nil {
			return r.readErr(ctx, err, q, "the board to be quiet")
		}
	}
}

// waitBanner skips input up to the raw banner, its line end and the
// prompt ">".
func (r *Raw) waitBanner(ctx context.Context) error {
	const what = "the raw REPL banner"
	for {
		if err := r.skipPastBanner(ctx, what); err != nil {
			return err
		}
		ok, err := r.lineEnd(ctx, what)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		c, err := r.peekByte(ctx, what)
		if err != nil {
			return err
		}
		if c == '>' {
			r.in.consume(1)
			return nil
		}
	}
}

// expectPrompt consumes the prompt ">", which must come next.
func (r *Raw) expectPrompt(ctx context.Context, what string) error {
	c, err := r.peekByte(ctx, what)
	if err != nil {
		return err
	}
	if c != '>' {
		return protocolErrorf("raw REPL: expected the prompt \">\", got %q", c)
	}
	r.in.consume(1)
	return nil
}

// noREPLMarker starts the notice a Device without Input sends for typed
// lines (DefaultNotice): such a device has no REPL to enter.
const noREPLMarker = "[no REPL is attached"

// skipPastBanner is skipPast for the raw banner, except that a device that
// says it has no REPL ends the wait at once with ErrNoREPL.
func (r *Raw) skipPastBanner(ctx context.Context, what string) error {
	for {
		p := r.in.pend()
		if i := bytes.Index(p, []byte(rawBanner)); i >= 0 {
			r.in.consume(i + len(rawBanner))
			return nil
		}
		if bytes.Contains(p, []byte(noREPLMarker)) {
			return ErrNoREPL
		}
		keep := max(len(rawBanner), len(noREPLMarker)) - 1
		if n := len(p) - keep; n > 0 {
			r.in.consume(n) // keep a possible start of either
		}
		if err := r.fill(ctx, r.cfg.silence, what); err != nil {
			return err
		}
	}
}

// skipPast discards input up to and including marker.
func (r *Raw) skipPast(ctx context.Context, marker []byte, what string) error {
	for {
		p := r.in.pend()
		if i := bytes.Index(p, marker); i >= 0 {
			r.in.consume(i + len(marker))
			return nil
		}
		if n := len(p) - len(marker) + 1; n > 0 {
			r.in.consume(n) // keep a possible start of marker
		}
		if err := r.fill(ctx, r.cfg.silence, what); err != nil {
			return err
		}
	}
}

// lineEnd consumes a line end ("\n", "\r\n", "\r\r\n" from a pty that
// adds CRs) and reports whether there was one; if not, it has consumed
// only carriage returns.
func (r *Raw) lineEnd(ctx context.Context, what string) (bool, error) {
	for {
		c, err := r.peekByte(ctx, what)
		if err != nil {
			return false, err
		}
		switch c {
		case '\r':
			r.in.consume(1)
		case '\n':
			r.in.consume(1)
			return true, nil
		default:
			return false, nil
		}
	}
}

// need waits, bounded by Silence, until n bytes are buffered.
func (r *Raw) need(ctx context.Context, n int, what string) error {
	for r.in.len() < n {
		if err := r.fill(ctx, r.cfg.silence, what); err != nil {
			return err
		}
	}
	return nil
}

func (r *Raw) peekByte(ctx context.Context, what string) (byte, error) {
	if err := r.need(ctx, 1, what); err != nil {
		return 0, err
	}
	return r.in.pend()[0], nil
}

func (r *Raw) readByte(ctx context.Context, what string) (byte, error) {
	c, err := r.peekByte(ctx, what)
	if err == nil {
		r.in.consume(1)
	}
	return c, err
}

// fill reads more input (see rawInput.fill) and explains a failure.
func (r *Raw) fill(ctx context.Context, silence time.Duration, what string) error {
	if err := r.in.fill(ctx, silence); err != nil {
		return r.readErr(ctx, err, silence, what)
	}
	return nil
}

// readErr turns an error of rawInput.fill into one for the caller: a
// ctx error unchanged (Exec recognises it), ErrNoResponse for silence,
// io.ErrUnexpectedEOF for the end of the stream.
func (r *Raw) readErr(ctx context.Context, err error, silence time.Duration, what string) error {
	switch {
	case errors.Is(err, errRawSilent):
		return fmt.Errorf("%w: silent for %v while waiting for %s: %w", ErrNoResponse, silence, what, os.ErrDeadlineExceeded)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return err
	case errors.Is(err, io.EOF):
		return fmt.Errorf("the stream ended while waiting for %s: %w", what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("read (waiting for %s): %w", what, prefixless{err})
}

// sleepContext waits for d or until ctx is done.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
