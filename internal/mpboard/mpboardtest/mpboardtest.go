// Package mpboardtest starts MicroPython boards (package mpboard) for tests
// and stops them when the test ends.
package mpboardtest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"webrepl/internal/mpboard"
)

// Start starts a board on a pseudo-terminal and closes it when the test
// ends (in either state, plugged in or unplugged). Open b.Path with the
// serial transport.
//
// It skips the test when node is not on PATH, and fails it when node is
// there but the harness is not installed (run `npm ci` in
// internal/mpboard/harness): a machine with Node.js is meant to run these
// tests. Opts.Logf, when nil, logs through tb.
func Start(tb testing.TB, opts *mpboard.Options) *mpboard.Board {
	tb.Helper()
	o := withLog(tb, opts)
	b, err := mpboard.Start(&o)
	check(tb, err)
	tb.Cleanup(func() { b.Close() })
	return b
}

// StartLinked starts a board as Start does, with Options.Link set to a
// file in a temporary directory of the test (unless opts sets it), so that
// b.Path stays the same across b.Unplug and b.Replug. Close, at the end of
// the test, removes the link. Hosts open b.Path with transport.OpenSerial,
// or transport.OpenStream with "serial://"+b.Path: a bare path outside
// /dev is not a serial address there.
func StartLinked(tb testing.TB, opts *mpboard.Options) *mpboard.Board {
	tb.Helper()
	o := withLog(tb, opts)
	if o.Link == "" {
		o.Link = filepath.Join(tb.TempDir(), "ttyBOARD")
	}
	return Start(tb, &o)
}

// Open starts a board without a pseudo-terminal and returns it as a
// Terminal (see mpboard.OpenWithFS), closed when the test ends. It skips
// and fails as Start does.
func Open(tb testing.TB, opts *mpboard.Options) *mpboard.Terminal {
	tb.Helper()
	o := withLog(tb, opts)
	s, err := mpboard.OpenWithFS(&o)
	check(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

func withLog(tb testing.TB, opts *mpboard.Options) mpboard.Options {
	var o mpboard.Options
	if opts != nil {
		o = *opts
	}
	if o.Logf == nil {
		o.Logf = tb.Logf
	}
	return o
}

func check(tb testing.TB, err error) {
	tb.Helper()
	switch {
	case err == nil:
	case errors.Is(err, mpboard.ErrNoNode):
		tb.Skipf("no MicroPython board: %v", err)
	default:
		tb.Fatal(err)
	}
}

// PasteProgram is Python for the friendly REPL's paste mode (Ctrl-E): a
// function that builds a list of n numbers, and a line that prints their
// count and sum. Lines end with "\r", as a terminal sends them; the text
// ends with the Ctrl-D that runs it. result is the line the board prints
// when it got every byte (a lost byte is a SyntaxError, an
// IndentationError, a wrong sum or no run at all); the board's echo of the
// text does not hold it. n = 150 makes 2.9 kB.
func PasteProgram(n int) (text, result string) {
	lines := []string{"def paste_check():", "    v = []"}
	sum := 0
	for i := range n {
		v := i * 7919 % 10007
		sum += v
		lines = append(lines, fmt.Sprintf("    v.append(%d)", v))
	}
	lines = append(lines, "    return v", "r = paste_check()", "print('pasted', len(r), sum(r))", "")
	return strings.Join(lines, "\r") + "\x04", fmt.Sprintf("pasted %d %d\n", n, sum)
}
