package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"webrepl/protocol"
	"webrepl/protocol/remote"
	"webrepl/transport"
)

// Notices the bridge writes into the terminal of its clients.
const (
	noticeLost    = "\r\n[webrepl bridge: the board is gone (%v); this session stays open and resumes when it is back]\r\n"
	noticeBack    = "\r\n[webrepl bridge: the board is back]\r\n"
	noticeClosing = "\r\n[webrepl bridge: shutting down]\r\n"
)

// errLost is the error of operations while the board is gone.
var errLost = fmt.Errorf("the board is not connected: %w", syscall.EIO)

// line is one board: its stream, the goroutines reading and writing it, and
// the clients sharing it.
type line struct {
	s    *Server
	name string
	cfg  BoardConfig
	log  *slog.Logger

	// smu guards the stream and the state below.
	smu      sync.Mutex
	rw       io.ReadWriteCloser // nil while the board is gone
	up       chan struct{}      // closed while rw is usable; replaced when it is lost
	lostErr  error              // why the board is gone
	identity string             // "usb:VID:PID:SERIAL" of a serial path, to re-find it
	closed   bool
	version  protocol.Version // the board's version, zero until learnt (see boardVersion)

	// opMu gives one user the board's input at a time: a file operation
	// for its whole length, the input pump for one chunk.
	opMu sync.Mutex

	// dmu orders the delivery of output: the reader holds it while it
	// hands a chunk to the clients or to a running operation.
	dmu      sync.Mutex
	op       *opInput // non-nil while a file operation reads the board
	rawMode  bool     // the terminal output says the board is in the raw REPL
	atPrompt bool     // the terminal output ends with the friendly prompt: the board is idle
	recent   []byte   // the end of the terminal output (recentSize bytes), for markers split across reads
	edge     []byte   // trackMode's scratch buffer

	in  *inputQueue
	hub hub

	done chan struct{} // closed by close
	wg   sync.WaitGroup
}

func newLine(s *Server, cfg BoardConfig) *line {
	l := &line{
		s:    s,
		name: cfg.Name,
		cfg:  cfg,
		log:  s.log.With("board", boardLabel(cfg)),
		up:   make(chan struct{}),
		done: make(chan struct{}),
	}
	l.in = newInputQueue(64 << 10)
	l.hub.l = l
	return l
}

func boardLabel(cfg BoardConfig) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	if cfg.Port != "" {
		return cfg.Port
	}
	return "default"
}

// open opens the board's stream once.
func (l *line) open(ctx context.Context) (io.ReadWriteCloser, error) {
	if l.cfg.Open != nil {
		return l.cfg.Open(ctx)
	}
	rw, err := transport.OpenStream(ctx, l.cfg.Port, &transport.StreamOptions{Baud: l.cfg.Baud})
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		l.smu.Lock()
		id := l.identity
		l.smu.Unlock()
		if id != "" {
			// The path vanished: the board may be back under another
			// name (re-enumerated). Look for it by its USB identity.
			if rw2, err2 := transport.OpenStream(ctx, id, &transport.StreamOptions{Baud: l.cfg.Baud}); err2 == nil {
				l.log.Info("board found again by its USB identity", "identity", id)
				return rw2, nil
			}
		}
	}
	return rw, err
}

// rememberIdentity notes the USB identity of a serial path, if the system
// lists one, so that a board that comes back under another name is found.
func (l *line) rememberIdentity() {
	if l.cfg.Open != nil || !strings.HasPrefix(l.cfg.Port, "/") {
		return
	}
	ports, err := transport.ListPorts()
	if err != nil {
		return
	}
	for _, p := range ports {
		if p.Name == l.cfg.Port && p.IsUSB && p.Serial != "" {
			l.smu.Lock()
			l.identity = "usb:" + p.VID + ":" + p.PID + ":" + p.Serial
			l.smu.Unlock()
			return
		}
	}
}

// start opens the board and starts the reader and the input pump.
func (l *line) start(ctx context.Context) error {
	rw, err := l.open(ctx)
	if err != nil {
		return fmt.Errorf("bridge: board %s: %w", boardLabel(l.cfg), err)
	}
	l.rememberIdentity()
	l.setUp(rw)
	l.wg.Add(2)
	go l.readLoop()
	go l.inputLoop()
	l.log.Info("board opened")
	return nil
}

// setUp makes rw the board's stream.
func (l *line) setUp(rw io.ReadWriteCloser) {
	l.smu.Lock()
	defer l.smu.Unlock()
	l.rw, l.lostErr = rw, nil
	l.version = protocol.Version{}
	close(l.up)
}

// stream returns the board's stream, or nil while it is gone.
func (l *line) stream() io.ReadWriteCloser {
	l.smu.Lock()
	defer l.smu.Unlock()
	return l.rw
}

// waitUp returns the stream, waiting up to wait for a lost board.
func (l *line) waitUp(ctx context.Context, wait time.Duration) (io.ReadWriteCloser, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		l.smu.Lock()
		rw, up, closed, lost := l.rw, l.up, l.closed, l.lostErr
		l.smu.Unlock()
		switch {
		case closed:
			return nil, fmt.Errorf("the bridge is shutting down: %w", syscall.EIO)
		case rw != nil:
			return rw, nil
		}
		select {
		case <-up:
		case <-t.C:
			return nil, fmt.Errorf("%w: %v", errLost, lost)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// readLoop reads the board's output and hands it on, and reopens the board
// when its stream fails.
func (l *line) readLoop() {
	defer l.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		rw := l.stream()
		if rw == nil {
			return
		}
		n, err := rw.Read(buf)
		if n > 0 {
			l.s.trace.record(l.name, '<', buf[:n])
			l.deliver(bytes.Clone(buf[:n]))
		}
		if err != nil {
			if !l.lost(rw, err) {
				return
			}
		}
	}
}

// deliver hands board output to a running file operation, or else to the
// clients.
func (l *line) deliver(p []byte) {
	l.dmu.Lock()
	defer l.dmu.Unlock()
	if l.op != nil {
		l.op.add(p)
		return
	}
	l.trackMode(p)
	l.hub.broadcast(p)
}

// The markers of the board's REPL mode in its output.
var (
	rawBanner      = []byte("raw REPL; CTRL-B to exit\r\n>")
	friendlyPrompt = []byte("\r\n>>> ")
)

// trackMode follows the terminal output: whether a client has put the
// board in the raw REPL (so that a file operation leaves the board in the
// mode it found it in), whether the board waits at its prompt, and the
// version its banner tells. The caller holds dmu.
//
// Every marker it looks for ends in '>' or in "> ", so output without a
// '>' near its end or in it (most of a flood) costs one vectorised scan.
// A marker may be split across reads: the previous output's end, kept in
// recent, is searched joined to the start of p, without copying p.
func (l *line) trackMode(p []byte) {
	if len(p) == 0 {
		return
	}
	k := len(rawBanner) - 1 // a marker split across reads has at most k bytes before p
	tail := l.recent[max(0, len(l.recent)-k):]
	edge := append(append(l.edge[:0], tail...), p[:min(k, len(p))]...)
	l.edge = edge
	if bytes.IndexByte(p, '>') >= 0 || bytes.IndexByte(tail, '>') >= 0 {
		rawEnd, friendlyEnd := -1, -1
		for _, m := range []struct {
			marker []byte
			end    *int
		}{{rawBanner, &rawEnd}, {friendlyPrompt, &friendlyEnd}} {
			if i := lastIndex(p, m.marker); i >= 0 {
				*m.end = len(tail) + i + len(m.marker)
			} else if i := lastIndex(edge, m.marker); i >= 0 {
				*m.end = i + len(m.marker)
			}
		}
		switch {
		case rawEnd > friendlyEnd:
			l.rawMode = true
		case friendlyEnd > rawEnd:
			l.rawMode = false
		}
	}
	// The output ends where p ends: in edge only when p is within it.
	if len(p) <= k {
		l.atPrompt = bytes.HasSuffix(edge, promptEnd)
	} else {
		l.atPrompt = bytes.HasSuffix(p, promptEnd)
	}
	if l.atPrompt && l.versionUnknown() {
		// The banner comes just before the prompt that follows it.
		l.edge = append(append(l.edge[:0], l.recent...), p[max(0, len(p)-recentSize):]...)
		l.noteVersion(l.edge)
	}
	l.keepRecent(p)
}

// recentSize is how much of the terminal output trackMode keeps: more
// than a banner line and the prompt after it.
const recentSize = 256

// keepRecent keeps the last recentSize bytes of the output, p last.
func (l *line) keepRecent(p []byte) {
	if len(p) >= recentSize {
		l.recent = append(l.recent[:0], p[len(p)-recentSize:]...)
		return
	}
	drop := max(0, len(l.recent)+len(p)-recentSize)
	l.recent = append(l.recent[:copy(l.recent, l.recent[drop:])], p...)
}

// promptEnd is how the friendly prompt ends: output that ends with it
// leaves the board waiting for a line.
var promptEnd = []byte(">>> ")

// The banner the board prints at start-up, after a soft reset and when it
// leaves the raw REPL: "MicroPython v1.27.0 on 2025-12-10; ...".
var bannerRE = regexp.MustCompile(`MicroPython v(\d{1,3})\.(\d{1,3})\.(\d{1,3})`)

// versionUnknown reports whether the board's version is still to be
// learnt.
func (l *line) versionUnknown() bool {
	l.smu.Lock()
	defer l.smu.Unlock()
	return l.version == (protocol.Version{})
}

// noteVersion learns the board's version from the last banner in p.
func (l *line) noteVersion(p []byte) {
	m := bannerRE.FindAllSubmatch(p, -1)
	if m == nil {
		return
	}
	last := m[len(m)-1]
	v, err := parseVersion(string(last[1]) + "." + string(last[2]) + "." + string(last[3]))
	if err != nil {
		return
	}
	l.smu.Lock()
	l.version = v
	l.smu.Unlock()
}

// lastIndex is bytes.LastIndex by repeated forward searches, which are
// vectorised (the markers are rare, so there are few of them).
func lastIndex(b, sep []byte) int {
	last := -1
	for off := 0; ; {
		i := bytes.Index(b[off:], sep)
		if i < 0 {
			return last
		}
		last = off + i
		off = last + 1
	}
}

// lost handles a failed stream: it tells the clients, then looks for the
// board until it is back (true) or the line is closed (false).
func (l *line) lost(rw io.ReadWriteCloser, cause error) bool {
	l.smu.Lock()
	if l.closed {
		l.smu.Unlock()
		return false
	}
	l.rw, l.lostErr = nil, cause
	l.up = make(chan struct{})
	l.smu.Unlock()
	rw.Close()
	l.log.Warn("board lost; looking for it", "err", cause)
	l.dmu.Lock()
	if l.op != nil {
		l.op.fail(errLost)
	}
	l.hub.broadcast(fmt.Appendf(nil, noticeLost, shortErr(cause)))
	l.dmu.Unlock()

	t := time.NewTicker(l.s.opts.ReconnectInterval)
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		select {
		case <-l.done:
			return false
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(l.s.ctx, 5*time.Second)
		rw, err := l.open(ctx)
		cancel()
		if err != nil {
			if attempt%40 == 1 {
				l.log.Debug("board still gone", "err", err)
			}
			continue
		}
		l.smu.Lock()
		if l.closed {
			l.smu.Unlock()
			rw.Close()
			return false
		}
		l.smu.Unlock()
		l.setUp(rw)
		l.log.Info("board back")
		l.dmu.Lock()
		l.hub.broadcast([]byte(noticeBack))
		l.dmu.Unlock()
		return true
	}
}

// shortErr is an error's text without the package prefixes.
func shortErr(err error) string {
	s := err.Error()
	for _, p := range []string{"webrepl: ", "bridge: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	return s
}

// close ends the line: sessions, the stream, the goroutines.
func (l *line) close() {
	l.smu.Lock()
	if l.closed {
		l.smu.Unlock()
		return
	}
	l.closed = true
	rw := l.rw
	l.rw = nil
	l.smu.Unlock()
	close(l.done)
	l.hub.closeAll(noticeClosing)
	l.in.close()
	if rw != nil {
		rw.Close()
	}
	l.wg.Wait()
}

// write sends p to the board (traced). The caller holds opMu.
func (l *line) write(rw io.Writer, p []byte) error {
	l.s.trace.record(l.name, '>', p)
	_, err := rw.Write(p)
	return err
}

// inputLoop writes terminal input to the board, paced.
func (l *line) inputLoop() {
	defer l.wg.Done()
	chunk := make([]byte, l.s.opts.PasteChunk)
	for {
		n, more, ok := l.in.take(chunk)
		if !ok {
			return
		}
		l.writeInput(chunk[:n])
		if more && l.s.opts.PasteDelay > 0 {
			select {
			case <-time.After(l.s.opts.PasteDelay):
			case <-l.done:
				l.in.release()
				return
			}
		}
		l.in.release()
	}
}

// typed sends terminal input to the board: straight away when nothing else
// is waiting or on its way (a keystroke, a short line), otherwise through
// the paced queue. It returns false once the line is closed.
func (l *line) typed(p []byte) bool {
	if l.in.direct(p, l.s.opts.PasteChunk) {
		l.writeInput(p)
		l.in.release()
		return true
	}
	return l.in.put(p)
}

// writeInput writes one chunk of terminal input to the board, waiting for
// a running file operation to end.
func (l *line) writeInput(p []byte) {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	rw := l.stream()
	err := errLost
	if rw != nil {
		err = l.write(rw, p)
	}
	if err != nil {
		l.log.Debug("terminal input dropped", "bytes", len(p), "err", err)
	}
}

// do runs fn with the board in the raw REPL, hidden from the terminal
// clients, who get a fresh prompt afterwards.
func (l *line) do(ctx context.Context, what string, fn func(ctx context.Context, b *remote.Board) error) error {
	ctx, cancel := context.WithTimeout(ctx, l.s.opts.OpTimeout)
	defer cancel()
	l.opMu.Lock()
	defer l.opMu.Unlock()
	rw, err := l.waitUp(ctx, 5*time.Second)
	if err != nil {
		return err
	}
	in := newOpInput()
	l.dmu.Lock()
	l.op = in
	wasRaw := l.rawMode
	l.dmu.Unlock()
	start := time.Now()
	b := remote.NewRaw(&opStream{l: l, in: in, w: rw}, &remote.Options{
		Raw:     l.s.opts.Raw,
		StayRaw: wasRaw,
		Logf:    func(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) },
	})
	err = fn(ctx, b)
	b.Close() // leaves the raw REPL ("\r\x02") unless a client had the board there
	l.giveBack(in, wasRaw)
	l.log.Info("file operation", "op", what, "took", time.Since(start).Round(time.Millisecond), "err", err)
	return err
}

// giveBack returns the board's output to the clients. After the raw REPL
// was left it waits (briefly) for the friendly prompt, swallowing the
// banner, and gives the clients a fresh prompt. A board that stays in the
// raw REPL (a client's raw session) is at its raw prompt already: the
// client, which is waiting for its file operation, expects nothing more.
func (l *line) giveBack(in *opInput, stayedRaw bool) {
	if !stayedRaw {
		in.waitFor(friendlyPrompt, 2*time.Second)
	}
	l.dmu.Lock()
	defer l.dmu.Unlock()
	l.op = nil
	l.noteVersion(in.peek())
	rest := in.rest(friendlyPrompt)
	if stayedRaw {
		return
	}
	l.rawMode = false
	l.atPrompt = len(rest) == 0
	l.hub.broadcast(append(bytes.Clone(friendlyPrompt), rest...))
}

// boardVersion answers GET_VER with the board's MicroPython version. It
// is learnt from the banners the board prints (at start-up, after a soft
// reset, after every file operation) and, when none has been seen, asked
// with the raw REPL, but only while the board is idle at its prompt: the
// reference client sends GET_VER right after every login, and connecting
// must not interrupt a running program. Otherwise the answer is 0.0.0
// ("unknown").
func (l *line) boardVersion(ctx context.Context) (protocol.Version, error) {
	l.smu.Lock()
	v := l.version
	l.smu.Unlock()
	if v != (protocol.Version{}) {
		return v, nil
	}
	l.dmu.Lock()
	idle := l.atPrompt && !l.rawMode && l.op == nil
	l.dmu.Unlock()
	if !idle {
		l.log.Info("GET_VER answered 0.0.0: the board's version is not known yet, and it may be running a program")
		return protocol.Version{}, nil
	}
	err := l.do(ctx, "version", func(ctx context.Context, b *remote.Board) error {
		s, err := b.Version(ctx)
		if err != nil {
			return err
		}
		v, err = parseVersion(s)
		return err
	})
	if err != nil {
		l.log.Warn("GET_VER answered 0.0.0: asking the board failed", "err", err)
		return protocol.Version{}, nil
	}
	l.smu.Lock()
	l.version = v
	l.smu.Unlock()
	return v, nil
}

// parseVersion parses "1.27.0".
func parseVersion(s string) (protocol.Version, error) {
	f := strings.Split(strings.TrimSpace(s), ".")
	if len(f) != 3 {
		return protocol.Version{}, fmt.Errorf("unexpected version %q", s)
	}
	var n [3]uint8
	for i, x := range f {
		v, err := strconv.ParseUint(x, 10, 8)
		if err != nil {
			return protocol.Version{}, fmt.Errorf("unexpected version %q", s)
		}
		n[i] = uint8(v)
	}
	return protocol.Version{Major: n[0], Minor: n[1], Micro: n[2]}, nil
}

// hardReset pulses DTR/RTS.
func (l *line) hardReset(ctx context.Context) error {
	l.opMu.Lock()
	defer l.opMu.Unlock()
	rw, err := l.waitUp(ctx, time.Second)
	if err != nil {
		return err
	}
	r, ok := rw.(interface{ PulseReset(context.Context) error })
	if !ok {
		return fmt.Errorf("the board's link cannot drive DTR/RTS: %w", errors.ErrUnsupported)
	}
	l.log.Info("hard reset by DTR/RTS")
	err = r.PulseReset(ctx)
	if errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("the board's port has no DTR/RTS lines (%v): %w", shortErr(err), errors.ErrUnsupported)
	}
	return err
}

// opStream is the board's stream as a file operation sees it: reads come
// from the reader goroutine (through opInput), writes go to the board.
type opStream struct {
	l  *line
	in *opInput
	w  io.Writer
}

func (o *opStream) Read(p []byte) (int, error)  { return o.in.Read(p) }
func (o *opStream) Write(p []byte) (int, error) { return len(p), o.l.write(o.w, p) }
func (o *opStream) Close() error                { return nil }

// SetReadDeadline lets the raw REPL bound its reads without a goroutine.
func (o *opStream) SetReadDeadline(t time.Time) error { return o.in.setDeadline(t) }
