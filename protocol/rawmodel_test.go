package protocol

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawQueue is one direction of a rawConn: an unbounded byte buffer (like
// the buffers of a serial line), with an optional read deadline and a log
// of the Write calls.
type rawQueue struct {
	mu       sync.Mutex
	buf      []byte
	closed   bool
	wake     chan struct{} // closed and replaced when anything changes
	deadline time.Time
	writes   []rawWriteRec
}

type rawWriteRec struct {
	n  int
	at time.Time
}

func newRawQueue() *rawQueue { return &rawQueue{wake: make(chan struct{})} }

func (q *rawQueue) changedLocked() {
	close(q.wake)
	q.wake = make(chan struct{})
}

func (q *rawQueue) read(p []byte) (int, error) {
	for {
		q.mu.Lock()
		if len(q.buf) > 0 {
			n := copy(p, q.buf)
			q.buf = q.buf[n:]
			q.mu.Unlock()
			return n, nil
		}
		if q.closed {
			q.mu.Unlock()
			return 0, io.EOF
		}
		dl, wake := q.deadline, q.wake
		q.mu.Unlock()
		if dl.IsZero() {
			<-wake
			continue
		}
		d := time.Until(dl)
		if d <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		select {
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (q *rawQueue) write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, io.ErrClosedPipe
	}
	q.buf = append(q.buf, p...)
	q.writes = append(q.writes, rawWriteRec{len(p), time.Now()})
	q.changedLocked()
	return len(p), nil
}

func (q *rawQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		q.changedLocked()
	}
}

func (q *rawQueue) setDeadline(t time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deadline = t
	q.changedLocked()
}

// peek returns the first buffered byte, if any.
func (q *rawQueue) peek() (byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.buf) == 0 {
		return 0, false
	}
	return q.buf[0], true
}

// takeWrites returns and forgets the log of Write calls.
func (q *rawQueue) takeWrites() []rawWriteRec {
	q.mu.Lock()
	defer q.mu.Unlock()
	w := q.writes
	q.writes = nil
	return w
}

// rawConn is one end of an in-memory, buffered, full-duplex byte stream
// with read deadlines. Closing either end closes both directions.
type rawConn struct {
	in, out *rawQueue
}

func rawConnPair() (a, b *rawConn) {
	x, y := newRawQueue(), newRawQueue()
	return &rawConn{in: x, out: y}, &rawConn{in: y, out: x}
}

func (c *rawConn) Read(p []byte) (int, error)  { return c.in.read(p) }
func (c *rawConn) Write(p []byte) (int, error) { return c.out.write(p) }
func (c *rawConn) Close() error {
	c.in.close()
	c.out.close()
	return nil
}
func (c *rawConn) SetReadDeadline(t time.Time) error {
	c.in.setDeadline(t)
	return nil
}

// rawNoDeadline hides SetReadDeadline, so that Raw reads in helper
// goroutines.
type rawNoDeadline struct{ c *rawConn }

func (c rawNoDeadline) Read(p []byte) (int, error)  { return c.c.Read(p) }
func (c rawNoDeadline) Write(p []byte) (int, error) { return c.c.Write(p) }

// rawModelConfig chooses how the model board behaves.
type rawModelConfig struct {
	paste      string        // "": raw-paste supported; "none": firmware without it (Ctrl-A reprints the banner); "refuse": answers R\x00
	window     int           // raw-paste window; 0 means 128 (MICROPY_REPL_STDIN_BUFFER_MAX/2)
	lf         string        // line end the board prints; "" means "\r\n"
	bootNoise  string        // printed when the model starts
	enterNoise string        // printed just before the raw banner when entering raw mode from the friendly REPL
	piece      int           // > 0: print in writes of this many bytes
	running    bool          // start in raw mode, running code that only Ctrl-C stops
	slow       time.Duration // how long the program "slow" stays silent
}

// rawModel is a board's REPL (shared/runtime/pyexec.c), written from the
// byte transcripts of reference §2.2 and §2.3: the friendly REPL, raw
// mode, raw-paste mode with flow control, soft resets, and a tiny table
// of programs it "runs".
//
// It grants raw-paste credit lazily, like a slow board: it consumes a
// window only once the host has sent everything it was granted, and
// then checks that the host sent nothing more. Any excess is recorded as
// a violation and fails the test.
type rawModel struct {
	t   testing.TB
	cfg rawModelConfig
	c   *rawConn

	in   []byte // read from c, not processed yet
	raw  bool
	line []byte

	mute  atomic.Bool // print nothing (a board that stopped answering)
	stall atomic.Bool // raw-paste: grant no more credit once it is used up

	running   chan string   // a program that waits for Ctrl-C has started
	stalled   chan struct{} // the host has used up its credit and none is granted
	friendly  chan struct{} // Ctrl-B took the board to the friendly REPL
	violation chan string

	mu               sync.Mutex
	codes            []string
	violations       []string
	expectViolations bool
	pasteRequests    int
	softResets       int
	interrupts       int
	abortReceived    int // raw-paste bytes that reached the board before the host ended an aborted paste
	done             chan struct{}
}

func startRawModel(t *testing.T, cfg rawModelConfig) (*rawModel, *rawConn) {
	t.Helper()
	if cfg.window == 0 {
		cfg.window = 128
	}
	if cfg.lf == "" {
		cfg.lf = "\r\n"
	}
	host, dev := rawConnPair()
	m := &rawModel{
		t: t, cfg: cfg, c: dev,
		running:   make(chan string, 16),
		stalled:   make(chan struct{}, 16),
		friendly:  make(chan struct{}, 16),
		violation: make(chan string, 16),
		done:      make(chan struct{}),
	}
	go m.run()
	t.Cleanup(func() {
		host.Close()
		<-m.done
		m.mu.Lock()
		defer m.mu.Unlock()
		if !m.expectViolations {
			for _, v := range m.violations {
				t.Errorf("model board: %s", v)
			}
		}
	})
	return m, host
}

func (m *rawModel) violate(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	m.mu.Lock()
	m.violations = append(m.violations, s)
	m.mu.Unlock()
	select {
	case m.violation <- s:
	default:
	}
}

func (m *rawModel) counts() (pasteRequests, softResets, interrupts int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pasteRequests, m.softResets, m.interrupts
}

func (m *rawModel) lastCode() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.codes) == 0 {
		return ""
	}
	return m.codes[len(m.codes)-1]
}

func (m *rawModel) out(s string) {
	if m.mute.Load() || s == "" {
		return
	}
	p := []byte(s)
	for len(p) > 0 {
		n := len(p)
		if m.cfg.piece > 0 {
			n = min(n, m.cfg.piece)
		}
		if _, err := m.c.Write(p[:n]); err != nil {
			return
		}
		p = p[n:]
	}
}

// next returns the next input byte; false when the stream has ended.
func (m *rawModel) next() (byte, bool) {
	for len(m.in) == 0 {
		buf := make([]byte, 512)
		n, err := m.c.Read(buf)
		m.in = append(m.in, buf[:n]...)
		if n == 0 && err != nil {
			return 0, false
		}
	}
	c := m.in[0]
	m.in = m.in[1:]
	return c, true
}

// pendingInput returns the next input byte if one has arrived.
func (m *rawModel) pendingInput() (byte, bool) {
	if len(m.in) > 0 {
		return m.in[0], true
	}
	return m.c.in.peek()
}

func (m *rawModel) banner() string { return "raw REPL; CTRL-B to exit" + m.cfg.lf + ">" }

func (m *rawModel) friendlyBanner() string {
	return "MicroPython v1.27.0 on 2025-12-10; model board\r\nType \"help()\" for more information.\r\n>>> "
}

func (m *rawModel) traceback(last string) string {
	lf := m.cfg.lf
	return "Traceback (most recent call last):" + lf + `  File "<stdin>", line 1, in <module>` + lf + last + lf
}

func (m *rawModel) run() {
	defer close(m.done)
	defer m.c.Close()
	m.out(m.cfg.bootNoise)
	if m.cfg.running {
		m.raw = true
		if !m.waitInterrupt("preexisting") {
			return
		}
	}
	for {
		c, ok := m.next()
		if !ok {
			return
		}
		if m.raw {
			ok = m.rawChar(c)
		} else {
			m.friendlyChar(c)
		}
		if !ok {
			return
		}
	}
}

func (m *rawModel) friendlyChar(c byte) {
	switch c {
	case rawCtrlA:
		m.raw = true
		m.line = m.line[:0]
		m.out("\r\n" + m.cfg.enterNoise + m.banner())
	case rawCtrlB:
		m.out("\r\n" + m.friendlyBanner())
	case rawCtrlC, '\r':
		m.out("\r\n>>> ")
	case rawCtrlD:
		m.mu.Lock()
		m.softResets++
		m.mu.Unlock()
		m.out("\r\nMPY: soft reboot\r\n" + m.friendlyBanner())
	default:
		m.out(string(c))
	}
}

// rawChar handles a byte in raw mode; false when the stream has ended.
func (m *rawModel) rawChar(c byte) bool {
	switch c {
	case rawCtrlA:
		if len(m.line) == 2 && m.line[0] == rawCtrlE {
			x := m.line[1]
			m.line = m.line[:0]
			return m.pasteRequest(x)
		}
		m.line = m.line[:0]
		m.out(m.banner())
	case rawCtrlB:
		m.raw = false
		m.line = m.line[:0]
		m.out("\r\n" + m.friendlyBanner())
		m.friendly <- struct{}{}
	case rawCtrlC:
		m.line = m.line[:0]
	case rawCtrlD:
		m.out("OK")
		if len(m.line) == 0 {
			m.softReset()
			return true
		}
		code := string(m.line)
		m.line = m.line[:0]
		return m.execute(code)
	default:
		m.line = append(m.line, c)
	}
	return true
}

func (m *rawModel) softReset() {
	m.mu.Lock()
	m.softResets++
	m.mu.Unlock()
	m.out("\r\nMPY: soft reboot" + m.cfg.lf + "boot.py: hello" + m.cfg.lf + m.banner())
}

func (m *rawModel) pasteRequest(x byte) bool {
	m.mu.Lock()
	m.pasteRequests++
	m.mu.Unlock()
	switch {
	case m.cfg.paste == "none":
		m.out(m.banner()) // a plain Ctrl-A
		return true
	case m.cfg.paste == "refuse" || x != 'A':
		m.out("R\x00>")
		return true
	}
	return m.paste()
}

// rawSyntaxMarker in pasted code makes the model fail to compile it.
const rawSyntaxMarker = "!SYNTAX!"

// paste is raw-paste mode (reference §2.3).
func (m *rawModel) paste() bool {
	w := m.cfg.window
	m.out("R\x01" + string([]byte{byte(w), byte(w >> 8)}) + "\x01")
	granted, received := 2*w, 0
	var code []byte
	for {
		c, ok := m.next()
		if !ok {
			return false
		}
		switch c {
		case rawCtrlC:
			m.mu.Lock()
			m.interrupts++
			m.mu.Unlock()
			m.out("\x04")
			m.out("\x04KeyboardInterrupt: " + m.cfg.lf + "\x04>")
			return true
		case rawCtrlD:
			m.out("\x04")
			return m.execute(string(code))
		}
		received++
		if received > granted {
			m.violate("raw paste: byte %d arrived with only %d granted", received, granted)
		}
		code = append(code, c)
		if bytes.HasSuffix(code, []byte(rawSyntaxMarker)) {
			// Early abort: tell the host, discard until Ctrl-C or
			// Ctrl-D, then report the error.
			m.out("\x04")
			for {
				c, ok := m.next()
				if !ok {
					return false
				}
				if c == rawCtrlC || c == rawCtrlD {
					break
				}
				received++
			}
			m.mu.Lock()
			m.abortReceived = received
			m.codes = append(m.codes, string(code))
			m.mu.Unlock()
			lf := m.cfg.lf
			m.out("\x04Traceback (most recent call last):" + lf + `  File "<stdin>", line 1` + lf + "SyntaxError: invalid syntax" + lf + "\x04>")
			return true
		}
		if received == granted {
			// The host has used all its credit: anything other than
			// the end of the paste already waiting is an overrun.
			if b, ok := m.pendingInput(); ok && b != rawCtrlC && b != rawCtrlD {
				m.violate("raw paste: the host sent more than the %d bytes granted", granted)
			}
			if m.stall.Load() {
				m.stalled <- struct{}{}
				continue
			}
			m.out("\x01") // consumed a window
			granted += w
		}
	}
}

// execute "runs" code from a table, printing stdout, \x04, the exception
// text, \x04 and the prompt; false when the stream has ended.
func (m *rawModel) execute(code string) bool {
	m.mu.Lock()
	m.codes = append(m.codes, code)
	m.mu.Unlock()
	lf := m.cfg.lf
	var stdout, stderr string
	switch {
	case code == "print(1+1)":
		stdout = "2" + lf
	case code == "raise OSError(2)":
		stderr = m.traceback("OSError: [Errno 2] ENOENT")
	case code == "print(repr(1+2))":
		stdout = "3" + lf
	case code == "print(repr('a'+'b'))":
		stdout = "'ab'" + lf
	case strings.HasPrefix(code, "print(repr("):
		name := strings.TrimSuffix(strings.TrimPrefix(code, "print(repr("), "))")
		stderr = m.traceback("NameError: name '" + name + "' isn't defined")
	case code == "loop":
		return m.waitInterrupt(code)
	case code == "print('partial')\nloop":
		m.out("partial" + lf)
		return m.waitInterrupt(code)
	case code == "slow":
		t := time.NewTimer(m.cfg.slow)
		<-t.C
		stdout = "done" + lf
	case code == "hangup":
		m.out("bye")
		return false
	case code == "import sys\nsys.exit()":
		m.out("\x04\x04")
		m.softReset()
		return true
	case code == "\n":
	default:
		stdout = fmt.Sprintf("%d bytes", len(code)) + lf
	}
	m.out(stdout + "\x04" + stderr + "\x04>")
	return true
}

// waitInterrupt is running code that only Ctrl-C stops.
func (m *rawModel) waitInterrupt(name string) bool {
	m.running <- name
	for {
		c, ok := m.next()
		if !ok {
			return false
		}
		if c == rawCtrlC {
			break
		}
	}
	m.mu.Lock()
	m.interrupts++
	m.mu.Unlock()
	m.out("\x04" + m.traceback("KeyboardInterrupt: ") + "\x04>")
	return true
}
