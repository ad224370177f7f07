//go:build linux

package transport

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func checkNoDelay(t *testing.T, rw any) {
	t.Helper()
	c, ok := rw.(net.Conn)
	if !ok {
		t.Fatalf("%T is not a net.Conn", rw)
	}
	if v := sockopt(t, c, unix.TCP_NODELAY); v == 0 {
		t.Error("TCP_NODELAY is off")
	}
}

// TestOpenStreamPty: the slave side of a pseudo-terminal opened by path
// and by serial:// with a baud rate; raw and 8-bit clean both ways.
func TestOpenStreamPty(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr func(path string) string
		baud uint32
	}{
		{"path", func(p string) string { return p }, unix.B115200},
		{"serial url", func(p string) string { return "serial://" + p + "?baud=57600" }, unix.B57600},
		{"serial url raw", func(p string) string { return "serial://" + p + "?framing=raw" }, unix.B9600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakCheck(t)
			p := openPty(t)
			opts := &StreamOptions{Logf: t.Logf}
			if tc.baud == unix.B9600 {
				opts.Baud = 9600
			}
			rw, err := OpenStream(bg(), tc.addr(p.Name), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rw.Close() })
			s, ok := rw.(*Serial)
			if !ok || s.Path() != p.Name {
				t.Fatalf("got a %T", rw)
			}
			exchange(t, rw, p)
			exchange(t, p, rw)
			// The line speed, as the slave's termios has it. A second open
			// of the slave needs root: the port is opened exclusively.
			if f, err := os.OpenFile(p.Name, os.O_RDWR|unix.O_NOCTTY, 0); err == nil {
				tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				if got := tio.Cflag & unix.CBAUD; got != tc.baud {
					t.Errorf("baud bits %#o, want %#o", got, tc.baud)
				}
			} else {
				t.Log("baud not checked:", err)
			}
			if err := rw.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOpenStreamMissing(t *testing.T) {
	for _, addr := range []string{"/dev/ttyNOSUCH0", "serial:///dev/ttyNOSUCH0?baud=9600", "COM3"} {
		rw, err := OpenStream(bg(), addr, nil)
		if rw != nil {
			t.Fatalf("%s: got a stream %v", addr, rw)
		}
		var se *SerialError
		if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &se) || se.Op != "open" {
			t.Errorf("%s: got %v, want fs.ErrNotExist in a *SerialError", addr, err)
		}
		path := strings.TrimSuffix(strings.TrimPrefix(addr, "serial://"), "?baud=9600")
		if want := "webrepl: no such serial port " + path + " (webrepl ports lists the connected ones)"; err == nil || err.Error() != want {
			t.Errorf("%s: got %q, want %q", addr, err, want)
		}
	}
	// By USB identity, through this machine's real port list.
	for _, addr := range []string{"usb:fffe:fffd", "id:no-such-serial-number-here"} {
		rw, err := OpenStream(bg(), addr, nil)
		if rw != nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "webrepl ports lists what is connected") {
			t.Errorf("%s: got %v, %v", addr, rw, err)
		}
		t.Log(err)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(fds)
}

// TestOpenStreamResetPty: a pseudo-terminal has no modem lines, so the
// reset fails, and the port is closed again.
func TestOpenStreamResetPty(t *testing.T) {
	leakCheck(t)
	p := openPty(t)
	before := openFDs(t)
	rw, err := OpenStream(bg(), p.Name, &StreamOptions{ResetOnOpen: true, Logf: t.Logf})
	var se *SerialError
	if rw != nil || !errors.As(err, &se) || se.Op != "set DTR" {
		t.Fatalf("got %v, %v; want a set DTR error", rw, err)
	}
	t.Log(err)
	if after := openFDs(t); after != before {
		t.Errorf("%d descriptors open before, %d after", before, after)
	}
}

func TestSerialModemLines(t *testing.T) {
	leakCheck(t)
	p := openPty(t)
	s, err := OpenSerial(p.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var se *SerialError
	if err := s.SetDTR(true); !errors.As(err, &se) || se.Op != "set DTR" {
		t.Errorf("SetDTR on a pty: got %v, want a *SerialError", err)
	}
	if err := s.SetRTS(false); !errors.As(err, &se) || se.Op != "set RTS" {
		t.Errorf("SetRTS on a pty: got %v, want a *SerialError", err)
	}
	s.Close()
	if err := s.SetDTR(true); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetDTR after Close: got %v, want net.ErrClosed", err)
	}
	if err := s.SetRTS(true); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetRTS after Close: got %v, want net.ErrClosed", err)
	}
}
