package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"
	"time"
)

// StreamOptions configures OpenStream. The zero value (or nil) gives
// 115200 baud and leaves the board running.
type StreamOptions struct {
	// Baud is the serial line speed when the address gives none. Zero means
	// 115200. Not used for tcp.
	Baud int

	// ResetOnOpen resets the board after its serial port is opened, by the
	// DTR/RTS sequence of esptool's hard reset: DTR clear with RTS asserted
	// for 100 ms (an ESP32/ESP8266 auto-reset circuit holds EN low), both
	// clear (the chip starts, GPIO0 high: no bootloader), and after 100 ms
	// both asserted again (DTR first, so the passing state holds GPIO0 low,
	// which does nothing to a running chip, rather than EN). A board without
	// such a circuit is not reset. It fails on a line without modem
	// control, such as a pseudo-terminal. Not used for tcp.
	//
	// False, the default, leaves the board running: DTR and RTS stay
	// asserted as on open, a state that resets nothing (see Serial).
	ResetOnOpen bool

	// Logf receives debug messages (which port auto picked, a reset). Nil
	// discards them.
	Logf func(string, ...any)
}

// The timing of the ResetOnOpen sequence.
const (
	resetHold   = 100 * time.Millisecond // EN held low
	resetSettle = 100 * time.Millisecond // before DTR is asserted again
)

// OpenStream opens a raw REPL byte stream (see ParseAddress for the
// forms):
//
//   - serial: /dev/ttyACM0, COM3, serial://PATH[?baud=N] (framing absent
//     or raw). The result is a *Serial, which also has SetDTR and SetRTS.
//   - auto, usb:VID:PID[:SERIAL], id:SERIAL: ListPorts, then FindPort, then
//     as serial. Which port was chosen goes to Logf.
//   - tcp://host:port: a TCP connection (ser2net, socat) with TCP_NODELAY
//     set, a net.Conn.
//
// A WebREPL address (ws, wss, serial with framing=ws) is an error: use
// Dial. ctx bounds the TCP dial and the reset sequence; the stream does
// not keep it. On error the result is a nil interface.
//
// Serial errors are *SerialError values that match fs.ErrNotExist,
// fs.ErrPermission or ErrPortBusy where that applies; a missing device says
// "no such serial port PATH". Nothing found for auto, usb: or id: also
// matches fs.ErrNotExist.
func OpenStream(ctx context.Context, addr string, opts *StreamOptions) (io.ReadWriteCloser, error) {
	var o StreamOptions
	if opts != nil {
		o = *opts
	}
	if o.Baud < 0 {
		return nil, fmt.Errorf("webrepl: bad baud rate %d", o.Baud)
	}
	a, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	op := "open " + a.String()
	if a.IsWebREPL() {
		return nil, wrap(op, errors.New("a WebREPL address, not a raw REPL byte stream: open it with Dial"))
	}
	if err := ctx.Err(); err != nil {
		return nil, wrap(op, err)
	}
	path, baud := a.Path, a.Baud
	switch a.Scheme {
	case "tcp":
		c, err := dialStream(ctx, a)
		if err != nil {
			return nil, wrap("connect to "+a.String(), err)
		}
		if o.ResetOnOpen {
			logf(o.Logf, "webrepl: %s: no reset: the lines of a remote port are not ours", a)
		}
		return c, nil
	case "serial":
	case "auto", "usb", "id":
		if !haveUSBDetails {
			return nil, wrap(op, errors.New("this build cannot read USB details (built without cgo on macOS); give the port's path"))
		}
		ports, err := ListPorts()
		if err != nil {
			return nil, err
		}
		p, others, err := findPort(ports, a.String())
		if err != nil {
			return nil, err
		}
		logf(o.Logf, "webrepl: %s: using %s", a, describePort(p))
		for _, q := range others {
			logf(o.Logf, "webrepl: %s: also found %s", a, describePort(q))
		}
		path = p.Name
	default:
		return nil, wrap(op, fmt.Errorf("unknown scheme %q", a.Scheme))
	}
	if baud == 0 {
		baud = o.Baud
	}
	s, err := OpenSerial(path, &SerialOptions{Baud: baud})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &noPortError{path: path, err: err}
		}
		return nil, err
	}
	if o.ResetOnOpen {
		logf(o.Logf, "webrepl: %s: resetting the board (DTR/RTS pulse)", path)
		if err := s.pulseReset(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// dialStream connects to a tcp address, with TCP_NODELAY (and, on Linux,
// TCP_QUICKACK before reads) as for WebSocket.
func dialStream(ctx context.Context, a Address) (net.Conn, error) {
	c, err := netDial(ctx, "tcp", a.Host)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (is ser2net or socat listening there?)", err)
		}
		return nil, err
	}
	return c, nil
}

// PulseReset hard-resets the board by the sequence StreamOptions.ResetOnOpen
// describes (esptool's hard reset through DTR and RTS). It fails on a line
// without modem control, such as a pseudo-terminal; ctx bounds the waits.
func (s *Serial) PulseReset(ctx context.Context) error { return s.pulseReset(ctx) }

// pulseReset runs the ResetOnOpen sequence. It starts, as after open, with
// DTR and RTS asserted.
func (s *Serial) pulseReset(ctx context.Context) error {
	steps := []struct {
		set  func(bool) error
		on   bool
		wait time.Duration
	}{
		{s.SetDTR, false, resetHold}, // RTS alone: EN low, the chip in reset
		{s.SetRTS, false, resetSettle},
		{s.SetDTR, true, 0}, // DTR alone: GPIO0 low, harmless once running
		{s.SetRTS, true, 0},
	}
	for _, st := range steps {
		if err := st.set(st.on); err != nil {
			return err
		}
		if st.wait > 0 {
			if err := sleepCtx(ctx, st.wait); err != nil {
				return &SerialError{Op: "reset", Path: s.path, Err: err}
			}
		}
	}
	return nil
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// describePort says which port this is, for logs.
func describePort(p PortInfo) string {
	var b strings.Builder
	b.WriteString(p.Name)
	if p.IsUSB {
		b.WriteString(" (")
		b.WriteString(p.VID + ":" + p.PID)
		if p.Product != "" {
			b.WriteString(" " + p.Product)
		}
		if p.Serial != "" {
			b.WriteString(", serial " + p.Serial)
		}
		b.WriteString(")")
	}
	return b.String()
}

func logf(f func(string, ...any), format string, args ...any) {
	if f != nil {
		f(format, args...)
	}
}

// noPortError: the serial device does not exist. It unwraps to the
// *SerialError, which matches fs.ErrNotExist.
type noPortError struct {
	path string
	err  error
}

func (e *noPortError) Error() string {
	return "webrepl: no such serial port " + e.path + " (webrepl ports lists the connected ones)"
}

func (e *noPortError) Unwrap() error { return e.err }
