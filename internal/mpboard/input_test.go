//go:build linux

package mpboard_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
)

// writePaced writes p in chunks of at most chunk bytes with a pause after
// each but the last, as the bridge paces terminal input. It calls before
// with each chunk's index before writing it.
func writePaced(ctx context.Context, f *os.File, p []byte, chunk int, pause time.Duration, before func(i int)) error {
	for i := 0; len(p) > 0; i++ {
		before(i)
		n := min(chunk, len(p))
		if _, err := f.Write(p[:n]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		p = p[n:]
		if len(p) == 0 {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return nil
}

// tryUntil reads until the output holds want, as until does, but gives up
// after d: it then reports false and keeps what it read.
func (l *line) tryUntil(want string, d time.Duration) (string, bool) {
	l.t.Helper()
	l.f.SetReadDeadline(time.Now().Add(d))
	defer l.f.SetReadDeadline(time.Time{})
	buf := make([]byte, 4096)
	for {
		if i := strings.Index(string(l.buf), want); i >= 0 {
			got := string(l.buf[:i+len(want)])
			l.buf = l.buf[i+len(want):]
			return got, true
		}
		n, err := l.f.Read(buf)
		l.buf = append(l.buf, buf[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return "", false
		}
		if err != nil {
			l.t.Fatalf("waiting for %q: %v; got %q", want, err, l.buf)
		}
	}
}

// probe is what recoverPrompt types, and probeAnswer what the board prints
// for it (and not in its echo).
const (
	probe       = "\x03print('probe', 6*7)\r"
	probeAnswer = "probe 42\n"
)

// recoverPrompt brings a board that lost input back to its friendly
// prompt, as a host does: Ctrl-C (which ends paste mode, or clears the
// line) and a probe line, again until the board answers the probe. Bytes
// sent while the board's buffer is still full are lost too, and nothing
// says when it has room again, so each try waits a while for the answer.
// It returns the output up to the answer.
func recoverPrompt(ctx context.Context, l *line) string {
	l.t.Helper()
	var out strings.Builder
	for ctx.Err() == nil {
		l.send(probe)
		got, ok := l.tryUntil(probeAnswer, 200*time.Millisecond)
		if ok {
			out.WriteString(got)
			return out.String()
		}
		out.Write(l.buf)
		l.buf = l.buf[:0]
	}
	l.t.Fatalf("the board never answered the probe; output %q", out.String())
	return ""
}

// TestInputBuffer pastes Python at a board whose input buffer holds 259
// bytes, as an ESP32's: a paste written at once is cut, one written as the
// bridge paces it (128-byte chunks, 10 ms apart) arrives whole, and so does
// a paste that fits the buffer. A board without the option loses nothing.
// (An ESP8266's 255 bytes would do as well, but with no room for two chunks
// that the host delivers together when it is slow to schedule the harness.)
//
// The host may also starve the harness of the CPU (a board never is): the
// paced paste still arrives whole when Node is stopped for 60 ms while it
// comes (six chunks then arrive together), and the paste written at once is
// cut all the same when Node is stopped while it comes.
func TestInputBuffer(t *testing.T) {
	big, bigResult := mpboardtest.PasteProgram(150)   // 2.9 kB
	small, smallResult := mpboardtest.PasteProgram(5) // 0.2 kB
	if len(big) < 2048 || len(small) > 200 {
		t.Fatalf("pastes of %d and %d bytes", len(big), len(small))
	}
	tests := []struct {
		name   string
		buffer int
		text   string
		result string
		chunk  int           // bytes per write; 0: all at once
		stall  time.Duration // Node is stopped this long from the 4th write on (the 1st when at once)
		whole  bool          // the board gets every byte
	}{
		{name: "no buffer, at once", text: big, result: bigResult, whole: true},
		{name: "at once", buffer: 260, text: big, result: bigResult, whole: false},
		{name: "paced", buffer: 260, text: big, result: bigResult, chunk: 128, whole: true},
		{name: "small, at once", buffer: 260, text: small, result: smallResult, whole: true},
		{name: "paced, node stalls", buffer: 260, text: big, result: bigResult, chunk: 128, stall: 60 * time.Millisecond, whole: true},
		{name: "at once, node stalls", buffer: 260, text: big, result: bigResult, stall: 200 * time.Millisecond, whole: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, l := start(t, &mpboard.Options{InputBuffer: tt.buffer})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			l.until(">>> ")
			l.send("\x05")
			l.until("=== ")
			chunk := tt.chunk
			if chunk == 0 {
				chunk = len(tt.text)
			}
			stallAt := 3
			if chunk == len(tt.text) {
				stallAt = 0
			}
			before := func(i int) {
				if tt.stall > 0 && i == stallAt {
					stopFor(t, b.Pid(), tt.stall)
				}
			}
			if err := writePaced(ctx, l.f, []byte(tt.text), chunk, 10*time.Millisecond, before); err != nil {
				t.Fatal(err)
			}
			var out string
			if tt.whole {
				out = lf(l.until(">>> ")) // after the paste has run
			} else {
				out = lf(recoverPrompt(ctx, l))
			}
			ran := strings.Contains(out, "\n"+tt.result)
			switch {
			case tt.whole && (!ran || strings.Contains(out, "Error")):
				t.Errorf("the paste did not run whole: output %q, want %q and no error", out, tt.result)
			case !tt.whole && ran:
				t.Errorf("the paste ran whole: output %q, want it cut", out)
			case !tt.whole && !strings.Contains(out, "def paste_check():"):
				t.Errorf("output %q, want the echo of the paste's start", out)
			}
		})
	}
}

// stopFor stops the process pid (SIGSTOP) and continues it (SIGCONT) d
// later, or when the test ends.
func stopFor(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	var once sync.Once
	cont := func() { once.Do(func() { syscall.Kill(pid, syscall.SIGCONT) }) }
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop node: %v", err)
	}
	timer := time.AfterFunc(d, cont)
	t.Cleanup(func() {
		timer.Stop()
		cont()
	})
}

func TestInputBufferMisuse(t *testing.T) {
	tests := []struct {
		name string
		opts mpboard.Options
	}{
		{"negative buffer", mpboard.Options{InputBuffer: -1}},
		{"one-byte buffer", mpboard.Options{InputBuffer: 1}},
		{"negative rate", mpboard.Options{InputBuffer: 256, InputRate: -1}},
		{"rate without buffer", mpboard.Options{InputRate: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if b, err := mpboard.Start(&tt.opts); err == nil {
				b.Close()
				t.Fatalf("a board with %+v started", tt.opts)
			}
		})
	}
}
