package transport

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"go.bug.st/serial"
)

// SerialOptions configures OpenSerial. The zero value (or nil) gives
// 115200 baud.
type SerialOptions struct {
	// Baud is the line speed. Zero means 115200.
	Baud int
}

const defaultBaud = 115200

// Serial is an open serial port as a plain io.ReadWriteCloser: 8 data bits,
// no parity, one stop bit, opened for exclusive use.
//
// DTR and RTS are both asserted on open and stay so unless SetDTR or SetRTS
// changes them. Both asserted is a state that does not reset a board:
//
//   - An ESP32/ESP8266 auto-reset circuit (two cross-coupled transistors on
//     the USB-serial bridge, or the same logic in the ESP32-S3/C3
//     USB-Serial-JTAG) pulls EN low, a reset, only while RTS is asserted
//     and DTR is not, and pulls GPIO0 low (the ROM bootloader) only while
//     DTR is asserted and RTS is not. DTR equal to RTS touches neither.
//   - Boards with native USB (pyboard, RP2040/RP2350, ESP32-S2/S3 with
//     TinyUSB, SAMD) take an asserted DTR to mean that a terminal is
//     connected, and may drop their output while it is not.
//
// Both asserted is also what the Linux kernel sets on open (both lines in
// one operation), what go.bug.st/serial sets on Windows by default, and
// what pyserial, and so mpremote, uses. Serial asks for it explicitly
// through serial.Mode.InitialStatusBits: on Unix the bits can only be set
// after open, so asking for the state the kernel has just set is what
// avoids a pulse. A line without modem control (a pseudo-terminal) is
// opened without them. Serial itself never pulses DTR or RTS.
//
// Read blocks until at least one byte arrives; it never returns (0, nil).
// Close may be called from another goroutine and makes a pending Read
// return an error wrapping net.ErrClosed; it is idempotent. On Linux the
// port is read and written through the Go runtime's poller (see pollFile),
// and Close interrupts a Write blocked on a full output buffer too;
// elsewhere such a Write is not interrupted. After the device is
// unplugged, Read returns a *SerialError saying so (wrapping net.ErrClosed).
// One goroutine may read while another writes.
type Serial struct {
	path   string
	port   serial.Port // never handed out
	f      *os.File    // the port's descriptor on the runtime's poller (Linux), or nil: see pollFile
	closed atomic.Bool
	once   sync.Once
	err    error // from the first Close
}

// OpenSerial opens the serial device at path (e.g. /dev/ttyACM0, COM3).
// Errors are *SerialError values matching fs.ErrNotExist, fs.ErrPermission
// or ErrPortBusy where that applies.
func OpenSerial(path string, opts *SerialOptions) (*Serial, error) {
	var o SerialOptions
	if opts != nil {
		o = *opts
	}
	if o.Baud < 0 {
		return nil, &SerialError{Op: "open", Path: path, Err: fmt.Errorf("bad baud rate %d", o.Baud)}
	}
	if o.Baud == 0 {
		o.Baud = defaultBaud
	}
	mode := &serial.Mode{
		BaudRate: o.Baud,
		DataBits: 8,
		Parity:   serial.NoParity,
		StopBits: serial.OneStopBit,
		// DTR and RTS both asserted: see the Serial doc.
		InitialStatusBits: &serial.ModemOutputBits{DTR: true, RTS: true},
	}
	p, err := serial.Open(path, mode)
	if isInvalidPort(err) {
		// A line without modem control (a pseudo-terminal, some virtual
		// ports) fails the modem-bits ioctl. Open it again without asking
		// for the bits; a port that is no serial port at all fails again.
		mode.InitialStatusBits = nil
		p, err = serial.Open(path, mode)
	}
	if err != nil {
		return nil, &SerialError{Op: "open", Path: path, Err: portError(err, false)}
	}
	if err := p.SetReadTimeout(serial.NoTimeout); err != nil {
		p.Close()
		return nil, &SerialError{Op: "open", Path: path, Err: portError(err, false)}
	}
	return &Serial{path: path, port: p, f: pollFile(p)}, nil
}

// isInvalidPort reports whether err is go.bug.st/serial's InvalidSerialPort,
// the code of every failure after the device was opened (its PortError
// does not tell which step failed).
func isInvalidPort(err error) bool {
	var pe *serial.PortError
	if errors.As(err, &pe) {
		return pe.Code() == serial.InvalidSerialPort
	}
	var v serial.PortError
	return errors.As(err, &v) && v.Code() == serial.InvalidSerialPort
}

// Path returns the device path the port was opened with.
func (s *Serial) Path() string { return s.path }

// maxEmptyReads bounds how often Read retries a read that returned neither
// bytes nor an error before it gives up with io.ErrNoProgress.
const maxEmptyReads = 100

// Read reads up to len(p) bytes. It blocks until at least one is there.
func (s *Serial) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.f != nil {
		n, err := s.f.Read(p)
		if err != nil {
			return n, &SerialError{Op: "read", Path: s.path, Err: fileError(err, s.closed.Load())}
		}
		return n, nil
	}
	for range maxEmptyReads {
		n, err := s.port.Read(p)
		if err != nil {
			return n, &SerialError{Op: "read", Path: s.path, Err: portError(err, s.closed.Load())}
		}
		if n > 0 {
			return n, nil
		}
		if s.closed.Load() {
			break
		}
	}
	if s.closed.Load() {
		return 0, &SerialError{Op: "read", Path: s.path, Err: net.ErrClosed}
	}
	return 0, &SerialError{Op: "read", Path: s.path, Err: io.ErrNoProgress}
}

// Write writes all of p, or returns an error.
func (s *Serial) Write(p []byte) (int, error) {
	if s.f != nil {
		n, err := s.f.Write(p)
		if err != nil {
			return n, &SerialError{Op: "write", Path: s.path, Err: fileError(err, s.closed.Load())}
		}
		return n, nil
	}
	done := 0
	for done < len(p) {
		n, err := s.port.Write(p[done:])
		done += n
		if err != nil {
			return done, &SerialError{Op: "write", Path: s.path, Err: portError(err, s.closed.Load())}
		}
		if n == 0 {
			return done, &SerialError{Op: "write", Path: s.path, Err: io.ErrShortWrite}
		}
	}
	return done, nil
}

// SetDTR asserts (true) or clears (false) the Data Terminal Ready line.
// See the Serial doc for what DTR and RTS do to boards. It may be called
// while another goroutine reads or writes. A line without modem control
// (a pseudo-terminal) returns an error.
func (s *Serial) SetDTR(on bool) error { return s.setLine("set DTR", s.port.SetDTR, on) }

// SetRTS asserts (true) or clears (false) the Request To Send line, as
// SetDTR does DTR. RTS asserted while DTR is clear holds an ESP32 with an
// auto-reset circuit in reset.
func (s *Serial) SetRTS(on bool) error { return s.setLine("set RTS", s.port.SetRTS, on) }

func (s *Serial) setLine(op string, set func(bool) error, on bool) error {
	if s.closed.Load() {
		return &SerialError{Op: op, Path: s.path, Err: net.ErrClosed}
	}
	if err := set(on); err != nil {
		return &SerialError{Op: op, Path: s.path, Err: portError(err, s.closed.Load())}
	}
	return nil
}

// Close closes the port and unblocks a pending Read. It is idempotent.
func (s *Serial) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		if s.f != nil {
			s.f.Close() // unblocks a pending Read or Write
		}
		if err := s.port.Close(); err != nil {
			s.err = &SerialError{Op: "close", Path: s.path, Err: portError(err, true)}
		}
	})
	return s.err
}

// portError turns go.bug.st/serial's errors, whose *serial.PortError has no
// Unwrap, into errors that errors.Is can see through. closedByUs says
// whether Close was called, which tells an unplugged device from a closed
// port.
func portError(err error, closedByUs bool) error {
	var pe *serial.PortError
	if !errors.As(err, &pe) {
		var v serial.PortError
		if !errors.As(err, &v) {
			if closedByUs {
				return net.ErrClosed // e.g. EBADF from a descriptor closed under us
			}
			return err
		}
		pe = &v
	}
	return portErrorCode(pe.Code(), pe, closedByUs)
}

// portErrorCode maps a PortError code; pe is the library's error, kept for
// the codes that have no equivalent here.
func portErrorCode(code serial.PortErrorCode, pe error, closedByUs bool) error {
	switch code {
	case serial.PortNotFound:
		return fs.ErrNotExist
	case serial.PermissionDenied:
		return fs.ErrPermission
	case serial.PortBusy:
		return ErrPortBusy
	case serial.PortClosed:
		if closedByUs {
			return net.ErrClosed
		}
		return errDisconnected{}
	}
	return pe
}

// fileError maps an error of the port's *os.File (see pollFile) to what
// the library's own reads would have given: end of file, which is how
// Linux reports an unplugged device, is errDisconnected, and any error
// after Close is net.ErrClosed.
func fileError(err error, closedByUs bool) error {
	switch {
	case closedByUs:
		return net.ErrClosed
	case err == io.EOF:
		return errDisconnected{}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err // the errno: the path is in the SerialError
	}
	return err
}

// errDisconnected: the port went away under us (on Linux, a read of zero
// bytes from a ready port). It matches net.ErrClosed, like a closed port.
type errDisconnected struct{}

func (errDisconnected) Error() string        { return "device disconnected (unplugged?)" }
func (errDisconnected) Is(target error) bool { return target == net.ErrClosed }
