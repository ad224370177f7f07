// Package emulator runs a WebREPL device made of parts: the protocol's
// device state machine, a directory for its files, and optionally a program
// on a pseudo-terminal as its REPL. It serves WebSocket clients on a
// listener and WebREPL framing on a serial line, one session at a time, as
// real firmware does.
package emulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"sync"
	"time"

	"webrepl/internal/pty"
	"webrepl/protocol"
	"webrepl/transport"
)

// Options configure an Emulator. The zero value of each field is its default.
type Options struct {
	// Password is what clients must type. Faithful devices accept at most
	// 9 bytes; Extended lifts the limit.
	Password string
	// FS holds the device's files. Nil: every file operation fails.
	FS protocol.FS
	// Version is what GET_VER answers. Zero: the protocol's default.
	Version protocol.Version
	// Extended answers file errors with a non-zero WB status and keeps the
	// session, instead of dropping the connection as firmware does.
	Extended bool
	// Shell, if non-empty, is a command (program and arguments) run on a
	// pseudo-terminal as the device's REPL. It starts with the Emulator and
	// lives until Close, shared by the sessions one after another, as a
	// board's REPL outlives its WebREPL connections.
	Shell []string
	// Terminal, if set (and Shell is not), is the device's REPL as a byte
	// stream: what it reads is typed input, what it writes is REPL
	// output. The MicroPython harness is one. Close closes it.
	Terminal io.ReadWriteCloser
	// HandshakeTimeout bounds a client's WebSocket handshake. Zero: the
	// transport's default.
	HandshakeTimeout time.Duration
	// Logf receives one line per connection event. Nil: discard.
	Logf func(format string, args ...any)
}

// Emulator is a WebREPL device. Serve and ServeStream may run at the same
// time (a device reachable over the network and a UART); the device has one
// session slot, shared by both. Close stops the shell and ends every
// session; it waits for the goroutines it started.
type Emulator struct {
	opts Options
	logf func(string, ...any)

	shell   *pty.Pty
	cmd     *exec.Cmd
	term    io.ReadWriteCloser // the REPL: the shell's pty, or Options.Terminal
	pumpEnd chan struct{}      // closed when the REPL output pump returns

	mu      sync.Mutex
	current *protocol.Device // the session holding the slot; nil when free
	closed  bool

	wg        sync.WaitGroup // Serve connections
	closeOnce sync.Once
}

// New checks opts and starts the shell, if any.
func New(opts *Options) (*Emulator, error) {
	e := &Emulator{}
	if opts != nil {
		e.opts = *opts
	}
	e.logf = e.opts.Logf
	if e.logf == nil {
		e.logf = func(string, ...any) {}
	}
	// Let the device state machine judge the password rules once, now.
	if _, err := protocol.NewDevice(nopLink{}, e.deviceOptions()); err != nil {
		return nil, err
	}
	if len(e.opts.Shell) > 0 {
		cmd := exec.Command(e.opts.Shell[0], e.opts.Shell[1:]...)
		p, err := pty.Start(cmd)
		if err != nil {
			return nil, fmt.Errorf("emulator: shell: %w", err)
		}
		e.shell, e.cmd, e.term = p, cmd, p
	} else if e.opts.Terminal != nil {
		e.term = e.opts.Terminal
	}
	if e.term != nil {
		e.pumpEnd = make(chan struct{})
		go e.pumpShell()
	}
	return e, nil
}

func (e *Emulator) deviceOptions() *protocol.DeviceOptions {
	o := &protocol.DeviceOptions{
		Password: e.opts.Password,
		FS:       e.opts.FS,
		Version:  e.opts.Version,
		Extended: e.opts.Extended,
		Logf:     e.opts.Logf,
	}
	if e.term != nil {
		o.Input = e.term
	}
	return o
}

// pumpShell copies the REPL's output to the session holding the slot, and
// drops it while there is none (a board's console output goes on whether or
// not anybody watches).
func (e *Emulator) pumpShell() {
	defer close(e.pumpEnd)
	buf := make([]byte, 4096)
	for {
		n, err := e.term.Read(buf)
		if n > 0 {
			e.mu.Lock()
			d := e.current
			e.mu.Unlock()
			if d != nil {
				d.Write(buf[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// take gives the session slot to d, or reports that it is busy.
func (e *Emulator) take(d *protocol.Device) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.current != nil {
		return false
	}
	e.current = d
	return true
}

func (e *Emulator) release(d *protocol.Device) {
	e.mu.Lock()
	if e.current == d {
		e.current = nil
	}
	e.mu.Unlock()
}

// Serve accepts WebSocket clients on ln until ctx ends or ln fails, and
// closes ln when it returns. Each connection's handshake runs in its own
// goroutine; Serve waits for all of them before it returns. A second client
// while a session is active gets what firmware gives it: a completed
// handshake, then the connection closed.
func (e *Emulator) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer e.wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("emulator: accept: %w", err)
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.serveConn(ctx, conn)
		}()
	}
}

func (e *Emulator) serveConn(ctx context.Context, conn net.Conn) {
	remote := conn.RemoteAddr().String()
	link, err := transport.Accept(ctx, conn, &transport.AcceptOptions{
		HandshakeTimeout: e.opts.HandshakeTimeout,
		Faithful:         true,
		Logf:             e.opts.Logf,
	})
	if err != nil {
		e.logf("emulator: %s: %v", remote, err)
		conn.Close()
		return
	}
	d, err := protocol.NewDevice(link, e.deviceOptions())
	if err != nil { // cannot happen: New checked the same options
		link.Close()
		return
	}
	if !e.take(d) {
		e.logf("emulator: concurrent WebREPL connection from %s rejected", remote)
		link.Close()
		return
	}
	defer e.release(d)
	e.logf("emulator: WebREPL connection from %s", remote)
	err = d.Serve(ctx)
	e.logf("emulator: %s: session ended: %v", remote, sessionEnd(err))
}

// ServeStream serves WebREPL framing straight on a byte stream such as a
// serial line, without HTTP, until ctx ends or the stream fails. A session
// ends when the client sends a close frame (or fails to log in); the next
// one then starts at once with a fresh password prompt, so a client that
// opens the line later resynchronises by sending a close frame. ServeStream
// closes rw when it returns.
func (e *Emulator) ServeStream(ctx context.Context, rw io.ReadWriteCloser) error {
	stop := context.AfterFunc(ctx, func() { rw.Close() })
	defer stop()
	defer rw.Close()
	line := &lineStream{rw: rw}
	br := bufio.NewReader(line)
	for {
		conn := transport.NewConn(line, br, &transport.Options{Role: transport.Server, SplitWrites: true, Logf: e.opts.Logf})
		d, err := protocol.NewDevice(sessionLink{conn}, e.deviceOptions())
		if err != nil {
			return err
		}
		if !e.take(d) {
			// Busy: wait for the slot without reading the line.
			if err := e.waitFree(ctx); err != nil {
				return nil
			}
			continue
		}
		err = d.Serve(ctx)
		e.release(d)
		if ctx.Err() != nil {
			return nil
		}
		if lerr := line.failed(); lerr != nil {
			return fmt.Errorf("emulator: serial line: %w", lerr)
		}
		if err != nil {
			// The device dropped the session (wrong password, a file
			// error): say so with a close frame, as a TCP device closes
			// its connection.
			conn.EndSession()
		}
		e.logf("emulator: serial session ended: %v", sessionEnd(err))
	}
}

// waitFree polls until the slot is free: a serial session waits while a
// network client holds the device.
func (e *Emulator) waitFree(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		e.mu.Lock()
		free, closed := e.current == nil, e.closed
		e.mu.Unlock()
		if closed {
			return net.ErrClosed
		}
		if free {
			return nil
		}
	}
}

func sessionEnd(err error) string {
	if err == nil {
		return "closed by client"
	}
	return err.Error()
}

// Close stops the shell and waits for the goroutines the Emulator started.
// Sessions end when their Serve or ServeStream context ends; Close is
// idempotent.
func (e *Emulator) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		if e.shell != nil {
			e.cmd.Process.Kill()
			e.cmd.Wait()
		}
		if e.term != nil {
			e.term.Close()
			<-e.pumpEnd
		}
	})
	return nil
}

// sessionLink is a stream Conn as a device session sees it: closing it
// ends nothing, as the line carries the next session.
type sessionLink struct{ *transport.Conn }

func (sessionLink) Close() error { return nil }

// lineStream is a serial line shared by one session after another: Close
// does nothing, because the line stays open for the next session, and the
// first error of the line itself is kept, to tell a session that ended from
// a line that died.
type lineStream struct {
	rw io.ReadWriter

	mu  sync.Mutex
	err error // first read or write error of rw
}

func (l *lineStream) Read(p []byte) (int, error) {
	n, err := l.rw.Read(p)
	l.record(err)
	return n, err
}

func (l *lineStream) Write(p []byte) (int, error) {
	n, err := l.rw.Write(p)
	l.record(err)
	return n, err
}

func (l *lineStream) record(err error) {
	if err == nil {
		return
	}
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

func (l *lineStream) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (*lineStream) Close() error { return nil }

// nopLink lets New validate device options without a connection.
type nopLink struct{}

func (nopLink) ReadMessage(context.Context) (bool, []byte, error) { return false, nil, io.EOF }
func (nopLink) WriteMessage(context.Context, bool, []byte) error  { return nil }
func (nopLink) Close() error                                      { return nil }
