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

// TestInteractiveRepl runs repl on a real terminal (a pseudo-terminal):
// raw mode while it runs, keys pass through as typed, Ctrl-] ends it, and
// the terminal's mode is restored.
func TestInteractiveRepl(t *testing.T) {
	leakcheck.Check(t)
	addr, _ := startDevice(t, emulator.Options{Shell: []string{"cat"}})
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
	before, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}

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
