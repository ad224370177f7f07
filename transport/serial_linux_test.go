//go:build linux

package transport

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.bug.st/serial"

	"webrepl/internal/pty"
)

// openPty opens a pseudo-terminal pair, closed at cleanup, or skips.
func openPty(t *testing.T) *pty.Pty {
	t.Helper()
	p, err := pty.Open()
	if err != nil {
		t.Skip("no pseudo-terminals:", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestSerialPtyFraming: a device emulator speaks WebSocket framing (no
// HTTP) on the master side of a pseudo-terminal; Dial opens the slave as a
// serial port, as a user opens /dev/ttyACM0. Before Dial, the line holds
// leftovers: a whole frame from an earlier client that vanished without
// closing, output of an earlier session with a lone 88 in it, and a stale
// answer to somebody else's close.
func TestSerialPtyFraming(t *testing.T) {
	leakCheck(t)
	p := openPty(t)
	// An earlier client's last frame, complete.
	slave, err := os.OpenFile(p.Name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	slave.Write([]byte{0x82, 0x01, 'A'})
	slave.Close()
	// Output waiting for the client: a stale partial frame with a lone 88,
	// and an untagged close answer, 88 00.
	p.Master.Write([]byte{0x81, 0x05, 'H', 0x88, 'l', 0x88, 0x00})

	served := goAsync(t, func() error { return emulate(p.Master, bufio.NewReader(p.Master)) }, p)
	c, err := Dial(bg(), "serial://"+p.Name+"?framing=ws&baud=115200", &DialOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if bin, p, err := c.ReadMessage(bg()); err != nil || bin || string(p) != "Password: " {
		t.Fatalf("got %v %q %v, want the prompt", bin, p, err)
	}
	if err := c.WriteMessage(bg(), true, []byte("secret\r")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := c.ReadMessage(bg()); err != nil || string(p) != "\r\nWebREPL connected\r\n>>> " {
		t.Fatalf("got %q %v", p, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := recvErr(t, served); err == nil {
		t.Error("emulator ended without an error")
	}
}

func TestSerialPtyReadWrite(t *testing.T) {
	leakCheck(t)
	p := openPty(t)
	s, err := OpenSerial(p.Name, &SerialOptions{Baud: 9600})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if s.Path() != p.Name {
		t.Errorf("Path() = %q", s.Path())
	}
	// Raw and 8-bit clean in both directions.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if _, err := s.Write(all); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 256)
	if _, err := io.ReadFull(p.Master, got); err != nil || string(got) != string(all) {
		t.Fatalf("master read % x, %v", head(got), err)
	}
	if _, err := p.Master.Write(all); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, got); err != nil || string(got) != string(all) {
		t.Fatalf("serial read % x, %v", head(got), err)
	}
}

func TestSerialCloseUnblocksRead(t *testing.T) {
	leakCheck(t)
	p := openPty(t)
	s, err := OpenSerial(p.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := goAsync(t, func() error {
		n, err := s.Read(make([]byte, 10))
		if n != 0 {
			return errors.New("read bytes from nowhere")
		}
		return err
	}, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, done); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("got %v, want net.ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
}

// TestSerialUnplug: the other side going away must give an error, never
// (0, nil).
func TestSerialUnplug(t *testing.T) {
	leakCheck(t)
	p := openPty(t)
	s, err := OpenSerial(p.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	done := goAsync(t, func() error {
		n, err := s.Read(make([]byte, 10))
		if n != 0 || err == nil {
			return errors.New("no error after the unplug")
		}
		return err
	}, s)
	p.Close() // master and the helper's slave descriptor: a hang-up
	err = recvErr(t, done)
	var se *SerialError
	if !errors.As(err, &se) || se.Op != "read" || !strings.HasPrefix(err.Error(), "webrepl: serial "+p.Name) {
		t.Fatalf("got %v, want a read *SerialError", err)
	}
	t.Log(err)
}

func TestSerialOpenErrors(t *testing.T) {
	_, err := OpenSerial("/dev/no-such-serial-port", nil)
	var se *SerialError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &se) || se.Op != "open" {
		t.Errorf("missing port: got %v, want fs.ErrNotExist", err)
	}
	if _, err := OpenSerial("/dev/null", &SerialOptions{Baud: -1}); err == nil || !strings.Contains(err.Error(), "baud") {
		t.Errorf("negative baud: got %v", err)
	}
	if _, err := OpenSerial("/dev/null", nil); err == nil {
		t.Error("/dev/null opened as a serial port")
	} else {
		t.Log(err)
	}
	if os.Geteuid() != 0 {
		p := openPty(t)
		if err := os.Chmod(p.Name, 0); err == nil {
			if _, err := OpenSerial(p.Name, nil); !errors.Is(err, fs.ErrPermission) {
				t.Errorf("no permission: got %v, want fs.ErrPermission", err)
			}
		}
	}
}

// TestPortErrorCodes checks the mapping of go.bug.st/serial's codes (its
// PortError has no Unwrap) to errors errors.Is can see.
func TestPortErrorCodes(t *testing.T) {
	cases := []struct {
		name   string
		code   serial.PortErrorCode
		closed bool
		want   error
		text   string
	}{
		{"not found", serial.PortNotFound, false, fs.ErrNotExist, "not exist"},
		{"permission", serial.PermissionDenied, false, fs.ErrPermission, "permission denied"},
		{"busy", serial.PortBusy, false, ErrPortBusy, "busy"},
		{"closed by us", serial.PortClosed, true, net.ErrClosed, "closed"},
		{"unplugged", serial.PortClosed, false, net.ErrClosed, "disconnected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := &SerialError{Op: "open", Path: "/dev/ttyX", Err: portErrorCode(tc.code, &serial.PortError{}, tc.closed)}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if strings.Count(err.Error(), "webrepl: ") != 1 {
				t.Errorf("prefix repeated: %q", err)
			}
		})
	}
	// A real *serial.PortError goes through errors.As; the zero value's
	// code is PortBusy.
	if err := portError(&serial.PortError{}, false); !errors.Is(err, ErrPortBusy) {
		t.Errorf("got %v, want ErrPortBusy", err)
	}
}

func TestDialSerialNoAnswer(t *testing.T) {
	leakCheck(t)
	p := openPty(t)
	start := time.Now()
	_, err := Dial(bg(), "serial://"+p.Name+"?framing=ws", &DialOptions{HandshakeTimeout: 100 * time.Millisecond})
	if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "no answer to a close frame") {
		t.Fatalf("got %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	t.Log(err)
}

// TestSerialUsesPoller: on Linux the port is read and written through the
// runtime's poller (see pollFile). Should go.bug.st/serial keep its
// descriptor elsewhere in a later version, reads fall back to the
// library's and this test says so.
func TestSerialUsesPoller(t *testing.T) {
	leakCheck(t)
	p := openPty(t)
	s, err := OpenSerial(p.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.f == nil {
		t.Fatal("the port is not on the poller: go.bug.st/serial's unixPort has no int field 'handle' any more")
	}
	// A write that cannot finish (1 MiB, far more than the line's
	// buffers hold, and nobody reads the other side) is interrupted by
	// Close.
	started := make(chan struct{})
	done := goAsync(t, func() error {
		close(started)
		_, err := s.Write(make([]byte, 1<<20))
		return err
	}, s)
	<-started
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, done); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the blocked write returned %v, want net.ErrClosed", err)
	}
}
