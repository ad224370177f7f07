// Package remote is one API for a MicroPython board's files and code,
// whatever the link: over a serial line or TCP everything runs through the
// raw REPL; over WebREPL, get, put and version use the binary file protocol
// (which works while a program runs) and the rest runs through the raw REPL
// inside the WebREPL terminal channel.
//
// Transfers through the raw REPL are binary-safe (base64 chunks, never the
// repr of raw bytes), compressed when the board has the deflate module
// (each chunk deflated on its own, and sent that way only when that makes
// it smaller), streamed (memory stays flat whatever the file size, on the
// host and on the board: see DefaultChunkSize), and written under a
// temporary name whose SHA-256, computed on the board, is checked before
// it is renamed over the real name: an interrupted or corrupted put never
// leaves a half-written or wrong file under the real name.
//
// At 115200 baud (11520 bytes/s) a put or get of incompressible data runs
// at about 71% of the line rate (base64 allows 75%), and of Python source
// at 1.6 (get) to 2 (put) times the line rate; see BenchmarkBoardTransfer
// in internal/e2e.
package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"webrepl/protocol"
)

// Options configure a Board. The zero value of each field is its default.
type Options struct {
	// NoVerify skips the SHA-256 check of a put's temporary file before
	// its rename.
	NoVerify bool
	// Raw configures the raw REPL. Nil: its defaults.
	Raw *protocol.RawOptions
	// ChunkSize is how many file bytes go in one raw-REPL command during
	// a transfer (one exec per chunk for put, one printed line per chunk for
	// get); it bounds the board's memory (see DefaultChunkSize). Zero:
	// DefaultChunkSize, or an eighth of the board's free memory when that
	// is less (but at least 1 KiB), as the board reports it at the first
	// transfer.
	ChunkSize int
	// NoCompress sends files through the raw REPL uncompressed even when
	// the board has the deflate module (see the package doc).
	NoCompress bool
	// StayRaw makes Close leave the board in the raw REPL (for a caller
	// that found it there, such as a bridge working between the commands
	// of a client's own raw-REPL session).
	StayRaw bool
	// Logf receives progress notes. Nil: discard.
	Logf func(format string, args ...any)
}

// DefaultChunkSize is the largest default of Options.ChunkSize: 8 KiB.
//
// A chunk is what the board holds at once during a raw-REPL transfer.
// For a put, that is one command of base64 text (4/3 of the chunk, less
// when compressed), which the raw REPL buffers (without raw-paste), the
// compiler copies into a bytes object, and the decoder turns back into
// the chunk: about 4 × the chunk at the peak, 32 KiB at the default. A
// compressed chunk needs less text, plus an inflate window of the chunk's
// size rounded up to a power of two and a 1 KiB buffer. For a get: the
// chunk, its compressed copy, a window of at most 4 KiB and the base64
// line, again about 4 × the chunk. So by default a board with less than
// 64 KiB free (an ESP8266 has some 30 KiB) gets smaller chunks.
const DefaultChunkSize = 8192

// Board is a connected board.
//
// Its methods may be called from one goroutine at a time. Close leaves the
// raw REPL (so the board is back at its friendly prompt) and closes the
// link.
type Board struct {
	opts   Options
	logf   func(string, ...any)
	stream io.ReadWriter    // the byte stream the raw REPL runs on
	web    *protocol.Client // non-nil on WebREPL links
	closer io.Closer

	raw  *protocol.Raw // entered on first use
	xfer xfer          // how raw-REPL transfers go; probed by the first one
	z    deflater      // compresses put chunks; kept across puts

	closeOnce sync.Once
	closeErr  error
}

// NewRaw makes a Board on a byte stream (a serial port, a TCP stream). The
// Board owns rw: Close closes it. Nothing is sent until the first operation,
// so opening a Board does not interrupt a running program.
func NewRaw(rw io.ReadWriteCloser, opts *Options) *Board {
	b := newBoard(opts)
	b.stream, b.closer = rw, rw
	return b
}

// NewWebREPL makes a Board on a logged-in WebREPL session. The Board owns
// c: Close closes it.
func NewWebREPL(c *protocol.Client, opts *Options) *Board {
	b := newBoard(opts)
	b.stream, b.web, b.closer = c, c, c
	return b
}

func newBoard(opts *Options) *Board {
	b := &Board{}
	if opts != nil {
		b.opts = *opts
	}
	b.logf = b.opts.Logf
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	return b
}

// WebREPL reports whether the board is reached over WebREPL.
func (b *Board) WebREPL() bool { return b.web != nil }

// rawREPL enters the raw REPL on first use.
func (b *Board) rawREPL(ctx context.Context) (*protocol.Raw, error) {
	if b.raw != nil {
		return b.raw, nil
	}
	r, err := protocol.EnterRaw(ctx, b.stream, b.opts.Raw)
	if err != nil {
		return nil, err
	}
	b.raw = r
	return r, nil
}

// Close leaves the raw REPL if it was entered (unless Options.StayRaw),
// then closes the link. It is idempotent.
func (b *Board) Close() error {
	b.closeOnce.Do(func() {
		if b.raw != nil && !b.opts.StayRaw {
			ctx, cancel := context.WithTimeout(context.Background(), rawExitWait)
			b.raw.Exit(ctx)
			cancel()
		}
		b.closeErr = b.closer.Close()
	})
	return b.closeErr
}

// Exec runs Python code on the board and streams what it prints to stdout.
// An exception on the board is a *protocol.ExecError.
func (b *Board) Exec(ctx context.Context, code string, stdout io.Writer) error {
	r, err := b.rawREPL(ctx)
	if err != nil {
		return err
	}
	return r.Exec(ctx, []byte(code), stdout)
}

// exec runs code and returns what it printed.
func (b *Board) exec(ctx context.Context, code string) ([]byte, error) {
	r, err := b.rawREPL(ctx)
	if err != nil {
		return nil, err
	}
	return r.ExecCapture(ctx, []byte(code))
}

// Eval evaluates a Python expression on the board and returns its repr.
func (b *Board) Eval(ctx context.Context, expr string) (string, error) {
	r, err := b.rawREPL(ctx)
	if err != nil {
		return "", err
	}
	out, err := r.Eval(ctx, expr)
	return string(out), err
}

// Version returns the board's MicroPython version, e.g. "1.27.0".
func (b *Board) Version(ctx context.Context) (string, error) {
	if b.web != nil {
		v, err := b.web.Version(ctx)
		if err != nil {
			return "", err
		}
		return v.String(), nil
	}
	out, err := b.exec(ctx, "import sys\nprint('%d.%d.%d' % sys.implementation.version[:3])")
	if err != nil {
		return "", err
	}
	return trimLine(out), nil
}

// SoftReset restarts the board's Python (Ctrl-D): files stay, variables
// go. Hard resets the whole board with machine.reset(); the link may then
// drop (a USB board re-enumerates).
func (b *Board) Reset(ctx context.Context, hard bool) error {
	r, err := b.rawREPL(ctx)
	if err != nil {
		return err
	}
	if !hard {
		return r.SoftReset(ctx)
	}
	// The board resets before it can answer: the code is sent, and the
	// missing answer is what success looks like.
	err = r.Exec(ctx, []byte("import machine\nmachine.reset()"), io.Discard)
	b.raw = nil
	var ee *protocol.ExecError
	if errors.As(err, &ee) {
		return fmt.Errorf("webrepl: reset: %w", err)
	}
	return nil
}

func trimLine(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
