//go:build linux

package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"webrepl/internal/emulator"
	"webrepl/internal/leakcheck"
	"webrepl/internal/pty"
)

// syncBuffer is a bytes.Buffer safe for one writer and polling readers,
// which can wait for a string to appear.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for !strings.Contains(s.String(), want) {
		select {
		case <-s.changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %q; have %q", want, s.String())
		}
	}
}

// openTerminal makes a pseudo-terminal in the cooked mode of a user's
// terminal and returns it, its slave side opened as a program's standard
// input, and the slave's mode now.
func openTerminal(t *testing.T) (*pty.Pty, *os.File, *unix.Termios) {
	t.Helper()
	p, err := pty.OpenTerminal()
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	tty, err := os.OpenFile(p.Name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	mode, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return p, tty, mode
}

// TestInteractiveRepl runs repl on a real terminal (a pseudo-terminal):
// raw mode while it runs, keys pass through as typed, Ctrl-] ends it, and
// the terminal's mode is restored.
func TestInteractiveRepl(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := startDevice(t, emulator.Options{Shell: []string{"cat"}})
	p, tty, before := openTerminal(t)

	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), []string{"webrepl", "repl", "-d", addr, "-p", testPassword},
			IO{Stdin: tty, Stdout: stdout, Stderr: stderr})
	}()
	stderr.waitFor(t, "Ctrl-] exits")
	raw, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Lflag&(unix.ECHO|unix.ICANON) != 0 {
		t.Errorf("terminal not in raw mode during repl: lflag %#x", raw.Lflag)
	}
	// In raw mode the keys arrive one by one with no line editing: the \r
	// is Enter for the board.
	if _, err := p.Master.Write([]byte("typed-keys\r")); err != nil {
		t.Fatal(err)
	}
	stdout.waitFor(t, "typed-keys")
	if _, err := p.Master.Write([]byte{0x1d}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("repl: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl-] did not end the repl")
	}
	after, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Errorf("terminal mode not restored: before %+v, after %+v", before, after)
	}
}

// TestPasswordPromptWithoutEcho: with no -p and no WEBREPL_PASSWORD, the
// password is asked for on the terminal with echo off, and the terminal's
// mode is restored afterwards.
func TestPasswordPromptWithoutEcho(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv("WEBREPL_PASSWORD", "")
	addr, _ := startDevice(t, emulator.Options{})
	p, tty, before := openTerminal(t)

	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), []string{"webrepl", "version", "-d", addr},
			IO{Stdin: tty, Stdout: stdout, Stderr: stderr})
	}()
	stderr.waitFor(t, "Password: ")
	during, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if during.Lflag&unix.ECHO != 0 {
		t.Error("the terminal echoes while the password is typed")
	}
	if _, err := p.Master.Write([]byte(testPassword + "\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("version: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("version did not finish after the password was typed")
	}
	if stdout.String() != "1.27.0\n" {
		t.Errorf("stdout %q, want the version", stdout.String())
	}
	// Nothing typed came back to the terminal.
	var echoed []byte
	fds := []unix.PollFd{{Fd: int32(p.Master.Fd()), Events: unix.POLLIN}}
	if n, _ := unix.Poll(fds, 100); n > 0 {
		buf := make([]byte, 4096)
		k, _ := p.Master.Read(buf)
		echoed = buf[:k]
	}
	if bytes.Contains(echoed, []byte(testPassword)) {
		t.Errorf("the password was echoed: %q", echoed)
	}
	after, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Error("terminal mode not restored after the password prompt")
	}
}
