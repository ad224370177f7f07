//go:build linux

package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"webrepl/bridge"
	"webrepl/internal/leakcheck"
	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/protocol"
)

// TestPasteArrivesWhole pastes 2.9 kB of Python, in one WebSocket message,
// through the bridge at a real board whose input buffer holds 259 bytes,
// as an ESP32's does: the bridge's pacing (128-byte chunks, 10 ms apart)
// lets the board take every byte, and the paste runs. The control writes
// the same paste straight to the line of the same kind of board, at once:
// the board loses most of it, so the pacing is what makes a paste arrive.
func TestPasteArrivesWhole(t *testing.T) {
	leakcheck.Check(t)
	text, result := mpboardtest.PasteProgram(150)
	if len(text) < 2048 || len(text) > 4096 || len(text) > protocol.MaxMessageSize {
		t.Fatalf("a paste of %d bytes, want 2 to 4 KiB in one message", len(text))
	}
	opts := &mpboard.Options{InputBuffer: 260}

	t.Run("through the bridge", func(t *testing.T) {
		_, cfg := startBoard(t, opts)
		br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
		c := login(t, br.URL, testPassword)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.WriteContext(ctx, []byte("\x05")); err != nil {
			t.Fatal(err)
		}
		expect(t, c, "=== ")
		// One message: WriteContext splits only past MaxMessageSize.
		if _, err := c.WriteContext(ctx, []byte(text)); err != nil {
			t.Fatal(err)
		}
		out := lfOnly(expect(t, c, ">>> ")) // the paste has run
		if !strings.Contains(out, "\n"+result) || strings.Contains(out, "Error") {
			t.Errorf("the paste did not run whole: the board printed %q, want %q and no error", out, result)
		}
	})

	t.Run("straight to the board", func(t *testing.T) {
		b := mpboardtest.Start(t, opts)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l := openBoardLine(t, b.Path)
		l.until(ctx, t, ">>> ")
		l.write(t, "\x05")
		l.until(ctx, t, "=== ")
		l.write(t, text)
		out := lfOnly(l.recoverPrompt(ctx, t))
		if strings.Contains(out, "\n"+result) {
			t.Fatalf("the paste written at once ran whole: the board printed %q; the input buffer lost nothing", out)
		}
		if !strings.Contains(out, "def paste_check():") {
			t.Errorf("the board printed %q, want the echo of the paste's start", out)
		}
	})
}

// lfOnly turns the board's line endings into \n.
func lfOnly(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// boardLine is a board's serial line opened without the bridge, as a
// terminal program opens /dev/ttyACM0.
type boardLine struct {
	f   *os.File
	buf []byte // read, not consumed yet
}

func openBoardLine(t *testing.T, path string) *boardLine {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &boardLine{f: f}
}

func (l *boardLine) write(t *testing.T, s string) {
	t.Helper()
	if _, err := l.f.Write([]byte(s)); err != nil {
		t.Fatalf("write to the board: %v", err)
	}
}

// read reads until the output holds want, for at most d or until ctx's
// deadline, and consumes and returns the output up to and including it.
// On a timeout the error matches os.ErrDeadlineExceeded and the output
// stays unconsumed.
func (l *boardLine) read(ctx context.Context, want string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if err := l.f.SetReadDeadline(deadline); err != nil {
		return "", fmt.Errorf("set deadline: %w", err)
	}
	buf := make([]byte, 4096)
	for {
		if i := bytes.Index(l.buf, []byte(want)); i >= 0 {
			got := string(l.buf[:i+len(want)])
			l.buf = l.buf[i+len(want):]
			return got, nil
		}
		n, err := l.f.Read(buf)
		l.buf = append(l.buf, buf[:n]...)
		if err != nil {
			return "", fmt.Errorf("waiting for %q: %w", want, err)
		}
	}
}

// until is read bounded by ctx alone; it fails the test on a timeout.
func (l *boardLine) until(ctx context.Context, t *testing.T, want string) string {
	t.Helper()
	got, err := l.read(ctx, want, time.Hour)
	if err != nil {
		t.Fatalf("%v; got %q", err, l.buf)
	}
	return got
}

// recoverPrompt brings a board that lost input back to its friendly
// prompt, as a host does: Ctrl-C (which ends paste mode, or clears the
// line) and a probe line, again until the board answers the probe. Bytes
// sent while the board's buffer is still full are lost too, and nothing
// says when it has room again, so each try waits a while for the answer.
// It returns the output up to the answer.
func (l *boardLine) recoverPrompt(ctx context.Context, t *testing.T) string {
	t.Helper()
	const probe, answer = "\x03print('probe', 6*7)\r", "probe 42\n"
	var out []byte
	for {
		l.write(t, probe)
		got, err := l.read(ctx, answer, 200*time.Millisecond)
		if err == nil {
			return string(append(out, got...))
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
			t.Fatalf("the board never answered the probe: %v; output %q", err, append(out, l.buf...))
		}
		out = append(out, l.buf...)
		l.buf = nil
	}
}
