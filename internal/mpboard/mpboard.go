// Package mpboard runs a real MicroPython as a board on a serial line, for
// tests: the WebAssembly port of MicroPython 1.27.0 (npm package
// @micropython/micropython-webassembly-pyscript) under Node.js, behind a
// pseudo-terminal. Tests open Board.Path with the serial transport exactly
// as a user opens /dev/ttyACM0, and everything above the serial port (raw
// REPL, file operations, the bridge) runs against the real interpreter.
//
// The board is harness/board.mjs. It needs `node` on PATH and its npm
// dependency installed once:
//
//	cd internal/mpboard/harness && npm ci
//
// The board behaves like MCU firmware without raw-paste support: Ctrl-D on
// an empty line soft-resets it (fresh Python state, files kept, raw mode
// kept) with "MPY: soft reboot\r\n", and a raw-paste request is answered
// with the raw REPL banner. Its files live in memory for the life of the
// board, across Board.Unplug and Board.Replug too, which simulate a USB
// unplug and re-plug (a power cycle: fresh Python state, files kept as on
// flash). See harness/board.mjs for the details and the port's limits.
//
// Board.FS and Terminal.FS reach the board's files without the REPL, over a
// side channel to Node, as a WebREPL device's file protocol does: use them
// to serve an emulated device's file operations (see FS).
//
// Start with mpboardtest.Start in tests; it skips when node is missing.
package mpboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"webrepl/internal/pty"
)

// Options configure a board. A nil *Options means all defaults.
type Options struct {
	// Baud, if non-zero, throttles the line like a UART at that rate with
	// 8N1 framing: at most Baud/10 bytes per second (at least 1) in each
	// direction, delivered in small slices. Zero: no throttle.
	Baud int
	// BootNoise makes the board print bytes of noise (a ROM bootloader
	// line, bytes that are not UTF-8, bare line feeds) before its first
	// banner, as boards do on power-up.
	BootNoise bool
	// NoBanner makes the board print nothing at start, as a board that
	// booted long before the host opened the port. BootNoise still applies.
	NoBanner bool
	// FSCapacity, if positive, is the size of the board's flash in bytes:
	// its files (their sizes summed) may take at most that much. A write
	// that would take them further writes nothing and fails, as on a
	// board whose flash is full: in Python with OSError(28) (ENOSPC), and
	// through FS with an error wrapping syscall.ENOSPC. os.statvfs does not
	// report it. Zero: no limit but Node's memory.
	FSCapacity int64
	// InputBuffer, if positive, is the size in bytes of the board's input
	// buffer, which then loses input as a board's does. Bytes from the
	// line go into a ring buffer of that size that holds one byte less,
	// as MicroPython's ringbuf_t (py/ringbuf.h), which the ports fill from
	// their UART and WebREPL receive handlers; a byte that arrives while
	// it is full is dropped, as there. The REPL takes bytes from it one at
	// a time, at most InputRate per second, as a microcontroller busy
	// echoing and compiling each byte, and none while it runs code. Real
	// buffers: 256 bytes on the ESP8266 (255 usable: the "pasted code is
	// cut at about 255 bytes" of WebREPL, micropython#2497 and #16997),
	// 260 on the ESP32, 512 on the rp2. So a host that writes a paste at
	// once loses all but its first few hundred bytes, and one that writes
	// chunks that fit, waiting between them, loses nothing, also when the
	// machine is busy: the harness makes up for stalls of Node (of some
	// 70 ms at most), which a board does not have (see board.mjs). Each loss
	// is logged through Logf. It must be at least 2. Zero: no buffer, and
	// no input is ever lost (it waits in the line, as with flow control).
	InputBuffer int
	// InputRate is how many bytes per second the REPL takes at most from
	// the InputBuffer; it needs an InputBuffer. Zero: 32000, two and a
	// half times the 12.8 kB/s of a host that writes 128 bytes every
	// 10 ms, so that such a host never fills the buffer, while one that
	// writes 2 kB at once overflows a buffer of a few hundred bytes before
	// the REPL has taken a tenth of it.
	InputRate int
	// Link, if set, is the path of a symbolic link to the board's
	// pseudo-terminal (e.g. DIR/ttyBOARD -> /dev/pts/7), as udev makes
	// /dev/serial/by-id links: Board.Path is then Link, and stays so across
	// Unplug and Replug while the pseudo-terminal changes. Its directory
	// must exist. Start replaces a symbolic link already there and fails if
	// something else is there. Unplug and Close remove it. Empty: no link;
	// Board.Path is the pseudo-terminal.
	Link string
	// HarnessDir is the directory holding board.mjs and its node_modules.
	// Empty: the harness directory next to this package's source file,
	// found with runtime.Caller; that works when the tests run from the
	// source tree (not with -trimpath or a moved binary), and otherwise
	// this field must be set.
	HarnessDir string
	// Logf receives the harness's diagnostics (Node's stderr). Nil:
	// discard.
	Logf func(format string, args ...any)
}

// ErrNoNode means the node program is not on PATH.
var ErrNoNode = errors.New("mpboard: node is not on PATH")

// ErrNotInstalled means the harness's npm dependency is missing; run
// `npm ci` in internal/mpboard/harness.
var ErrNotInstalled = errors.New("mpboard: harness not installed")

// startTimeout bounds how long Start and Open wait for the board's first
// prompt.
const startTimeout = 30 * time.Second

// wasmModule is the file of the npm dependency that board.mjs imports.
const wasmModule = "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"

// Available reports whether boards can start with the default HarnessDir:
// nil if node is on PATH and the harness's node_modules is installed.
// Otherwise the error matches ErrNoNode or ErrNotInstalled and says what to
// run.
func Available() error {
	dir, err := defaultHarnessDir()
	if err != nil {
		return err
	}
	return available(dir)
}

func available(dir string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return fmt.Errorf("%w: install Node.js (v20 or later) to run MicroPython for tests", ErrNoNode)
	}
	if _, err := os.Stat(filepath.Join(dir, "board.mjs")); err != nil {
		return fmt.Errorf("mpboard: harness: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(wasmModule))); err != nil {
		return fmt.Errorf("%w: run `npm ci` in %s (internal/mpboard/harness)", ErrNotInstalled, dir)
	}
	return nil
}

func defaultHarnessDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("mpboard: cannot locate the harness from the source path (built with -trimpath?); set Options.HarnessDir")
	}
	return filepath.Join(filepath.Dir(file), "harness"), nil
}

// cloneWithDefaults returns a copy of opts with defaults filled in, and
// checks it.
func cloneWithDefaults(opts *Options) (Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Baud < 0 {
		return o, fmt.Errorf("mpboard: negative Baud %d", o.Baud)
	}
	if o.FSCapacity < 0 {
		return o, fmt.Errorf("mpboard: negative FSCapacity %d", o.FSCapacity)
	}
	if err := checkInput(o.InputBuffer, o.InputRate); err != nil {
		return o, err
	}
	if o.InputBuffer > 0 && o.InputRate == 0 {
		o.InputRate = defaultInputRate
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.HarnessDir == "" {
		dir, err := defaultHarnessDir()
		if err != nil {
			return o, err
		}
		o.HarnessDir = dir
	}
	return o, nil
}

// defaultInputRate is Options.InputRate's default, in bytes per second.
const defaultInputRate = 32000

// checkInput checks Options.InputBuffer and Options.InputRate.
func checkInput(buffer, rate int) error {
	switch {
	case buffer < 0 || buffer == 1:
		return fmt.Errorf("mpboard: InputBuffer %d, want 0 or at least 2", buffer)
	case rate < 0:
		return fmt.Errorf("mpboard: negative InputRate %d", rate)
	case rate > 0 && buffer == 0:
		return fmt.Errorf("mpboard: InputRate %d without an InputBuffer", rate)
	}
	return nil
}

// bytesPerSecond is the throttle rate for baud, 0 for none.
func bytesPerSecond(baud int) int {
	if baud == 0 {
		return 0
	}
	return max(baud/10, 1)
}

// Board is a MicroPython board on a pseudo-terminal. Hosts open Path; the
// board keeps the pseudo-terminal (and its output) whether or not anyone has
// Path open, as a board that stays plugged in. Output that nobody reads
// fills the terminal's buffer and then stalls the board, as flow control
// would.
//
// Unplug and Replug simulate pulling the board's USB cable and plugging it
// back (a power cycle): see Unplug. With Options.Link, Path stays the same
// across them, as a udev link in /dev/serial/by-id does.
//
// The Board owns Node and the goroutines that copy between the
// pseudo-terminal and Node. All its methods may be called from any
// goroutine at the same time. Unplug, Replug and Close take turns (each
// waits for the one in progress), except that Close first makes an Unplug
// or Replug in progress give up. Close may be called at any time, in either
// state, any number of times.
type Board struct {
	// Path is what hosts open with the serial transport: Options.Link if
	// it was set, which stays the same across Unplug and Replug; otherwise
	// the pseudo-terminal's slave side, e.g. /dev/pts/7, which a Replug
	// need not bring back (see Device for the current one). Do not change
	// it. transport.OpenStream takes a path as a serial device only under
	// /dev: give it "serial://"+Path, or use transport.OpenSerial.
	Path string

	opts Options // a copy with defaults; read-only

	// ctx is cancelled when Close begins; it ends a Replug's wait for the
	// prompt and an Unplug's wait for the files.
	ctx    context.Context
	cancel context.CancelFunc

	opMu        sync.Mutex    // held by Unplug, Replug and Close throughout; guards the fields below
	flash       string        // while unplugged: the host directory with the saved files, or ""
	closed      bool          // Close has run
	saveTimeout time.Duration // how long Unplug waits for the files; a hook for tests

	mu    sync.Mutex // guards cur and files; never held while waiting
	cur   *plug      // the board as plugged in; nil while unplugged or closed
	files *FS        // the latest plug's FS (closed once that plug is gone)

	closeOnce sync.Once
	closeErr  error
}

// Start starts a board and returns once it has printed its first prompt
// (`>>> `) and that output has reached the pseudo-terminal, or with
// NoBanner once it is ready. That takes about 0.1 s on an idle machine
// (mostly Node's own start); after 30 s Start fails with the output so
// far. The start-up output stays in the pseudo-terminal for the first
// reader of Path. With Options.Link, the link is made once the board is
// ready.
func Start(opts *Options) (*Board, error) {
	o, err := cloneWithDefaults(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	pl, err := startPlug(ctx, &o, "")
	if err != nil {
		cancel()
		return nil, err
	}
	b := &Board{
		Path:        pl.pty.Name,
		opts:        o,
		ctx:         ctx,
		cancel:      cancel,
		saveTimeout: saveTimeout,
		cur:         pl,
		files:       pl.p.files,
	}
	if o.Link != "" {
		if err := placeLink(o.Link, pl.pty.Name); err != nil {
			pl.close()
			cancel()
			return nil, err
		}
		b.Path = o.Link
	}
	return b, nil
}

// FS returns the files of the board as plugged in now. It never blocks. An
// FS is that of one power-on: after Unplug, the FS got before fails with
// ErrChannelClosed (so does FS's result while the board is unplugged), and
// after Replug, FS returns a new FS that reaches the files the board came
// back with. Once the board is closed, calls fail with ErrChannelClosed.
// It is safe to use from any goroutine.
func (b *Board) FS() *FS {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.files
}

// Device returns the pseudo-terminal the board is on now, e.g. /dev/pts/7,
// or "" while it is unplugged or closed. Each Replug opens a new
// pseudo-terminal, which the kernel may give the old one's name.
func (b *Board) Device() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cur == nil {
		return ""
	}
	return b.cur.pty.Name
}

// Close stops the board, plugged in or not: it kills Node, closes the
// pseudo-terminal (the pts device goes away), removes Options.Link if it
// still points to the board, deletes the files saved by Unplug, and waits
// for the goroutines it started. An Unplug or Replug in progress gives up
// (with an error matching os.ErrClosed) first. It is idempotent; later
// calls return the first one's result.
func (b *Board) Close() error {
	b.closeOnce.Do(func() {
		b.cancel()
		b.opMu.Lock()
		defer b.opMu.Unlock()
		b.closed = true
		b.mu.Lock()
		pl := b.cur
		b.cur = nil
		b.mu.Unlock()
		if pl != nil {
			b.removeLink(pl.pty.Name)
			b.closeErr = pl.close()
		}
		b.dropFlash()
	})
	return b.closeErr
}

// plug is one power-on of a board: a Node process, its pseudo-terminal and
// the two goroutines that copy between them.
type plug struct {
	p      *proc
	pty    *pty.Pty
	master *os.File // non-blocking duplicate of the pty's master, for the pumps
	stop   chan struct{}
	wg     sync.WaitGroup // the two pumps

	progress chan struct{} // the output pump forwarded bytes; capacity 1

	mu         sync.Mutex // guards the fields below
	forwarded  int        // output bytes written to the pty
	transcript []byte     // the first output bytes, for the start error
}

// startPlug powers a board on: it starts Node (restoring the files saved in
// the host directory restore, if not "") and a pseudo-terminal, and returns
// once the board is ready, as Start describes. A cancelled ctx ends the
// wait with an error matching os.ErrClosed.
func startPlug(ctx context.Context, o *Options, restore string) (*plug, error) {
	p, err := startProc(o, restore)
	if err != nil {
		return nil, err
	}
	t, err := pty.Open()
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("mpboard: %w", err)
	}
	m, err := nonblockingDup(t.Master)
	if err != nil {
		t.Close()
		p.kill()
		return nil, fmt.Errorf("mpboard: %w", err)
	}
	pl := &plug{
		p:        p,
		pty:      t,
		master:   m,
		stop:     make(chan struct{}),
		progress: make(chan struct{}, 1),
	}
	rate := bytesPerSecond(o.Baud)
	pl.wg.Add(2)
	go pl.pumpIn(&pacer{rate: rate, closed: pl.stop})
	go pl.pumpOut(&pacer{rate: rate, closed: pl.stop})

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	want := -1
	for {
		if want >= 0 {
			pl.mu.Lock()
			done := pl.forwarded >= want
			pl.mu.Unlock()
			if done {
				return pl, nil
			}
		}
		select {
		case want = <-p.ready:
		case <-pl.progress:
		case <-p.exited:
			err := fmt.Errorf("mpboard: node exited before the board was ready (%v); output so far %q; stderr %q", p.waitErr, pl.startOutput(), p.stderrText())
			pl.close()
			return nil, err
		case <-timer.C:
			err := fmt.Errorf("mpboard: no prompt after %v; output so far %q; stderr %q", startTimeout, pl.startOutput(), p.stderrText())
			pl.close()
			return nil, err
		case <-ctx.Done():
			pl.close()
			return nil, fmt.Errorf("mpboard: board closed while starting: %w", os.ErrClosed)
		}
	}
}

func (pl *plug) startOutput() []byte {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return bytes.Clone(pl.transcript)
}

// pumpIn copies what hosts write to the pseudo-terminal to the board's
// input.
func (pl *plug) pumpIn(pc *pacer) {
	defer pl.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := pl.master.Read(buf)
		if n > 0 {
			if pc.write(pl.p.stdin, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pumpOut copies the board's output to the pseudo-terminal.
func (pl *plug) pumpOut(pc *pacer) {
	defer pl.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := pl.p.stdout.Read(buf)
		for off := 0; off < n; {
			k := min(n-off, pc.slice())
			if pc.wait(k) != nil {
				return
			}
			w, werr := pl.master.Write(buf[off : off+k])
			off += w
			pl.mu.Lock()
			pl.forwarded += w
			if len(pl.transcript) < 4096 {
				pl.transcript = append(pl.transcript, buf[off-w:off]...)
			}
			pl.mu.Unlock()
			select {
			case pl.progress <- struct{}{}:
			default:
			}
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// close powers the board off: it stops the pumps, kills Node and closes
// the pseudo-terminal, which hangs up its slave side (see Unplug). Call it
// once.
func (pl *plug) close() error {
	close(pl.stop)
	pl.master.Close()
	pl.p.kill()
	pl.wg.Wait()
	return pl.pty.Close()
}

// proc is the Node process running board.mjs, with pipes to its standard
// streams. Its stderr goroutine logs diagnostics and catches the ready line.
type proc struct {
	cmd    *exec.Cmd
	stdin  *os.File // write end
	stdout *os.File // read end
	stderr *os.File // read end
	files  *FS      // the file channel, on Node's fds 3 and 4
	logf   func(string, ...any)

	// ready receives the number of bytes the board wrote to stdout before
	// it was ready, once.
	ready      chan int
	stderrDone chan struct{}
	exited     chan struct{} // closed once Wait returned
	waitErr    error         // set before exited is closed

	mu     sync.Mutex
	errLog []byte // the first stderr bytes, for error messages

	killOnce sync.Once
}

// startProc starts Node with board.mjs. restore, if not "", is a host
// directory of files saved by Unplug, which the board powers on with.
func startProc(o *Options, restore string) (p *proc, err error) {
	if err := available(o.HarnessDir); err != nil {
		return nil, err
	}
	var files []*os.File // every pipe end opened so far, closed on failure
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	// stdin, stdout, stderr, file requests, file replies.
	var ends [5][2]*os.File
	for i := range ends {
		r, w, err := pipe()
		if err != nil {
			return nil, fmt.Errorf("mpboard: %w", err)
		}
		ends[i] = [2]*os.File{r, w}
	}
	inR, inW := ends[0][0], ends[0][1]
	outR, outW := ends[1][0], ends[1][1]
	errR, errW := ends[2][0], ends[2][1]
	reqR, reqW := ends[3][0], ends[3][1]
	repR, repW := ends[4][0], ends[4][1]
	args := []string{filepath.Join(o.HarnessDir, "board.mjs"), "--fs-channel"}
	if o.BootNoise {
		args = append(args, "--boot-noise")
	}
	if o.NoBanner {
		args = append(args, "--no-banner")
	}
	if o.FSCapacity > 0 {
		args = append(args, "--fs-capacity="+strconv.FormatInt(o.FSCapacity, 10))
	}
	if o.InputBuffer > 0 {
		args = append(args, "--input-buffer="+strconv.Itoa(o.InputBuffer), "--input-rate="+strconv.Itoa(o.InputRate))
	}
	if restore != "" {
		args = append(args, "--restore="+restore)
	}
	cmd := exec.Command("node", args...)
	cmd.Dir = o.HarnessDir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.ExtraFiles = []*os.File{reqR, repW} // fds 3 and 4
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("mpboard: start node: %w", err)
	}
	// The child has its ends now; ours would keep the pipes open.
	inR.Close()
	outW.Close()
	errW.Close()
	reqR.Close()
	repW.Close()
	p = &proc{
		cmd:        cmd,
		stdin:      inW,
		stdout:     outR,
		stderr:     errR,
		files:      newFS(reqW, repR),
		logf:       o.Logf,
		ready:      make(chan int, 1),
		stderrDone: make(chan struct{}),
		exited:     make(chan struct{}),
	}
	go p.readStderr()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

const readyPrefix = "mpboard: ready "

func (p *proc) readStderr() {
	defer close(p.stderrDone)
	var line []byte
	buf := make([]byte, 1024)
	for {
		n, err := p.stderr.Read(buf)
		p.mu.Lock()
		if len(p.errLog) < 4096 {
			p.errLog = append(p.errLog, buf[:n]...)
		}
		p.mu.Unlock()
		line = append(line, buf[:n]...)
		for {
			i := bytes.IndexByte(line, '\n')
			if i < 0 {
				break
			}
			s := string(line[:i])
			line = line[i+1:]
			if rest, ok := strings.CutPrefix(s, readyPrefix); ok {
				if n, err := strconv.Atoi(rest); err == nil {
					select {
					case p.ready <- n:
					default:
					}
					continue
				}
			}
			p.logf("mpboard: node: %s", s)
		}
		if err != nil {
			if len(line) > 0 {
				p.logf("mpboard: node: %s", line)
			}
			return
		}
	}
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.errLog)
}

// kill kills Node, waits for it and for the stderr goroutine, and closes
// the pipes. It is idempotent.
func (p *proc) kill() {
	p.killOnce.Do(func() {
		p.cmd.Process.Kill()
		<-p.exited
		p.files.close()
		p.stdin.Close()
		<-p.stderrDone
		p.stdout.Close()
		p.stderr.Close()
	})
}

// Open starts a board without a pseudo-terminal and returns its input and
// output as one stream: what is written is typed at the REPL, what is read
// is the board's output, from the first byte (boot noise, banner). Use it as
// an emulator's terminal. It is OpenWithFS for callers that need only the
// stream.
func Open(opts *Options) (io.ReadWriteCloser, error) {
	t, err := OpenWithFS(opts)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// OpenWithFS starts a board without a pseudo-terminal, as Open does, and
// returns it as a Terminal, whose FS reaches the board's files. It returns
// once the board is ready (bounded by 30 s). Options.Baud throttles Read
// and Write (not the FS).
func OpenWithFS(opts *Options) (*Terminal, error) {
	o, err := cloneWithDefaults(opts)
	if err != nil {
		return nil, err
	}
	p, err := startProc(&o, "")
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-p.ready:
	case <-p.exited:
		p.kill()
		return nil, fmt.Errorf("mpboard: node exited before the board was ready (%v); stderr %q", p.waitErr, p.stderrText())
	case <-timer.C:
		p.kill()
		return nil, fmt.Errorf("mpboard: board not ready after %v; stderr %q", startTimeout, p.stderrText())
	}
	closed := make(chan struct{})
	rate := bytesPerSecond(o.Baud)
	return &Terminal{
		p:      p,
		closed: closed,
		in:     pacer{rate: rate, closed: closed},
		out:    pacer{rate: rate, closed: closed},
	}, nil
}

// Terminal is a board without a pseudo-terminal: its REPL as a byte stream
// (Read is the board's output, Write is typed input) and its files (FS).
// The board's output must be read, or the board stalls once the pipe is
// full, as a UART with flow control would.
//
// Concurrency: one Read and one Write may run at the same time, and the FS
// may be used from any goroutine meanwhile. Close kills the board, unblocks
// them all and waits for the goroutines it started; it is idempotent.
type Terminal struct {
	p      *proc
	closed chan struct{}

	rmu sync.Mutex // serializes Read; guards out
	out pacer
	wmu sync.Mutex // serializes Write; guards in
	in  pacer

	closeOnce sync.Once
}

var _ io.ReadWriteCloser = (*Terminal)(nil)

// FS returns the board's files, which its Python sees. Once the Terminal
// is closed, its calls fail with ErrChannelClosed.
func (t *Terminal) FS() *FS { return t.p.files }

// Read reads the board's output.
func (t *Terminal) Read(b []byte) (int, error) {
	t.rmu.Lock()
	defer t.rmu.Unlock()
	if t.out.rate > 0 {
		b = b[:min(len(b), t.out.slice())]
	}
	n, err := t.p.stdout.Read(b)
	if n > 0 && t.out.wait(n) != nil {
		return n, nil // the bytes are the caller's; the next Read fails
	}
	if err != nil && t.isClosed() {
		err = os.ErrClosed
	}
	return n, err
}

// Write types b at the board's REPL.
func (t *Terminal) Write(b []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.isClosed() {
		return 0, os.ErrClosed
	}
	n, err := t.in.writeCount(t.p.stdin, b)
	if err != nil && t.isClosed() {
		err = os.ErrClosed
	}
	return n, err
}

func (t *Terminal) isClosed() bool {
	select {
	case <-t.closed:
		return true
	default:
		return false
	}
}

// Close kills the board. It is idempotent.
func (t *Terminal) Close() error {
	t.closeOnce.Do(func() {
		close(t.closed)
		t.p.kill()
	})
	return nil
}

// pacer spaces the bytes of one direction of a line as a UART at rate bytes
// per second would: each slice is delivered once the UART would have
// finished sending it, so the average rate never exceeds rate. Not safe for
// concurrent use.
type pacer struct {
	rate   int // bytes per second; 0: no throttle
	closed <-chan struct{}
	next   time.Time // when the UART has sent everything so far
}

var errPacerClosed = errors.New("mpboard: closed")

// slice is how many bytes to move at a time: 10 ms worth, 1 to 4096.
func (pc *pacer) slice() int {
	if pc.rate == 0 {
		return 4096
	}
	return min(max(pc.rate/100, 1), 4096)
}

// wait blocks until the UART would have sent n more bytes.
func (pc *pacer) wait(n int) error {
	if pc.rate == 0 {
		return nil
	}
	now := time.Now()
	if pc.next.Before(now) {
		pc.next = now // an idle line does not bank credit
	}
	pc.next = pc.next.Add(time.Duration(n) * time.Second / time.Duration(pc.rate))
	d := time.Until(pc.next)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-pc.closed:
		return errPacerClosed
	}
}

// write writes all of b to w in paced slices.
func (pc *pacer) write(w io.Writer, b []byte) error {
	_, err := pc.writeCount(w, b)
	return err
}

func (pc *pacer) writeCount(w io.Writer, b []byte) (int, error) {
	done := 0
	for done < len(b) {
		k := min(len(b)-done, pc.slice())
		if err := pc.wait(k); err != nil {
			return done, err
		}
		n, err := w.Write(b[done : done+k])
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
