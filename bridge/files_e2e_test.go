package bridge_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"webrepl/bridge"
	"webrepl/internal/leakcheck"
	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/protocol"
	"webrepl/transport"
)

// Whole-stack tests of the bridge's file errors and GET_VER, on the real
// MicroPython board.

// freshPrompt is what terminal clients get after a file operation
// (docs/bridge.md, "Files: what happens on the board").
const freshPrompt = "\r\n>>> "

// termReader reads a client's terminal output, keeping what arrived after
// the text it waited for.
type termReader struct {
	tb   testing.TB
	name string
	c    *protocol.Client
	buf  []byte
}

func newTermReader(tb testing.TB, name string, c *protocol.Client) *termReader {
	return &termReader{tb: tb, name: name, c: c}
}

// until reads until the output holds want and returns the output up to
// and including it, keeping the rest for the next call.
func (r *termReader) until(want string) string {
	r.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	buf := make([]byte, 4096)
	for {
		if i := bytes.Index(r.buf, []byte(want)); i >= 0 {
			got := string(r.buf[:i+len(want)])
			r.buf = r.buf[i+len(want):]
			return got
		}
		n, err := r.c.ReadContext(ctx, buf)
		r.buf = append(r.buf, buf[:n]...)
		if err != nil {
			r.tb.Fatalf("%s: waiting for %q: %v; got %q", r.name, want, err, r.buf)
		}
	}
}

// marker is a line that makes the board print a text that its echo does
// not contain.
type marker struct{ line, out string }

func newMarker(word string) marker {
	return marker{line: fmt.Sprintf("print('%s'+'-marker')", word), out: word + "-marker"}
}

// typeMarker types m's line on c.
func typeMarker(tb testing.TB, c *protocol.Client, m marker) {
	tb.Helper()
	typeLine(tb, c, m.line)
}

// drain reads r's output up to m's output and the prompt that follows it:
// the terminal is then at rest, with nothing more on its way.
func (r *termReader) drain(m marker) {
	r.tb.Helper()
	r.until(m.out)
	r.until(">>> ")
}

// settle types m's line on c and drains r to it.
func (r *termReader) settle(c *protocol.Client, m marker) {
	r.tb.Helper()
	typeMarker(r.tb, c, m)
	r.drain(m)
}

// sinceDrain reads r's output up to m's output and returns what came
// before the echo of m's line: what the terminal received since the last
// drain, before m was typed. It fails the test unless the echo, an end of
// line and m's output follow it exactly.
func (r *termReader) sinceDrain(m marker) string {
	r.tb.Helper()
	got := r.until(m.out)
	i := strings.Index(got, m.line)
	if i < 0 || got[i:] != m.line+"\r\n"+m.out {
		r.tb.Fatalf("%s: the marker line came as %q, want its echo, \\r\\n and %q", r.name, got, m.out)
	}
	return got[:i]
}

// harnessVersion asks a board of the harness, through the raw REPL, for
// its MicroPython version: what the bridge must answer for the real board.
func harnessVersion(t *testing.T) protocol.Version {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := mpboardtest.Start(t, nil)
	rw, err := transport.OpenStream(ctx, b.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	r, err := protocol.EnterRaw(ctx, rw, &protocol.RawOptions{ChunkDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.ExecCapture(ctx, []byte("import sys\nprint(sys.implementation.version)"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^\((\d+), (\d+), (\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("sys.implementation.version is %q", out)
	}
	var n [3]uint8
	for i := range n {
		v, err := strconv.ParseUint(m[i+1], 10, 8)
		if err != nil {
			t.Fatalf("sys.implementation.version is %q: %v", out, err)
		}
		n[i] = uint8(v)
	}
	return protocol.Version{Major: n[0], Minor: n[1], Micro: n[2]}
}

// wantStatus checks that err is a WB status of code.
func wantStatus(t *testing.T, what string, err error, code uint16) {
	t.Helper()
	se, ok := errors.AsType[*protocol.StatusError](err)
	if !ok {
		t.Fatalf("%s: %v, want a WB status %d", what, err, code)
	}
	if se.Code != code {
		t.Errorf("%s: WB status %d, want %d", what, se.Code, code)
	}
}

// wantNoFile checks, through the board's file channel, that name does not
// exist on the board.
func wantNoFile(t *testing.T, board *mpboard.Board, name string) {
	t.Helper()
	if fi, err := board.FS().Stat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: %v, %v; want it gone", name, fi, err)
	}
}

// TestPutToBadNames puts files where the board cannot write them: each
// gets the board's own errno as its WB status, leaves no temporary file,
// and the session goes on: the terminal works and a GET succeeds.
func TestPutToBadNames(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := startBoard(t, nil)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	c := login(t, br.URL, testPassword)
	term := newTermReader(t, "controller", c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Put(ctx, "kept.txt", strings.NewReader("kept"), 4, nil); err != nil {
		t.Fatal(err)
	}
	typeLine(t, c, "import os; os.mkdir('lib')")
	term.settle(c, newMarker("made"))

	for i, tc := range []struct {
		name, tmp string
		status    uint16
	}{
		// open() of the temporary file in the missing directory.
		{name: "nodir/x.py", status: protocol.ENOENT},
		// os.rename() of the temporary file over the directory, and
		// then os.remove() of the directory.
		{name: "lib", tmp: "/.lib.webrepl-tmp", status: protocol.EISDIR},
	} {
		data := []byte("print('never')\n")
		err := c.Put(ctx, tc.name, bytes.NewReader(data), int64(len(data)), nil)
		wantStatus(t, "put "+tc.name, err, tc.status)
		if tc.tmp != "" {
			wantNoFile(t, board, tc.tmp)
		}

		m := newMarker(fmt.Sprintf("after%d", i))
		typeMarker(t, c, m)
		if got := term.sinceDrain(m); got != freshPrompt {
			t.Errorf("put %s: before the next line the terminal got %q, want only a fresh prompt %q", tc.name, got, freshPrompt)
		}
		term.until(">>> ")
		var got bytes.Buffer
		if _, err := c.Get(ctx, "kept.txt", &got, nil); err != nil || got.String() != "kept" {
			t.Fatalf("get after the failed put of %s: %q, %v", tc.name, got.String(), err)
		}
		term.settle(c, newMarker(fmt.Sprintf("got%d", i)))
	}
	if fi, err := board.FS().Stat("lib"); err != nil || !fi.IsDir() {
		t.Errorf("lib after the put over it: %v, %v; want the directory", fi, err)
	}
}

// TestPutToFullDisk fills the board's flash mid-way through a PUT over an
// existing file: the client gets ENOSPC (28), the old file keeps its
// content, the temporary file goes, and the session goes on.
func TestPutToFullDisk(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := startBoard(t, &mpboard.Options{FSCapacity: 32 << 10})
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	c := login(t, br.URL, testPassword)
	term := newTermReader(t, "controller", c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	old := make([]byte, 12<<10)
	rand.Read(old)
	if err := c.Put(ctx, "data.bin", bytes.NewReader(old), int64(len(old)), nil); err != nil {
		t.Fatal(err)
	}
	// The temporary copy fits for some chunks (8 KiB each), not whole.
	data := make([]byte, 24<<10)
	rand.Read(data)
	err := c.Put(ctx, "data.bin", bytes.NewReader(data), int64(len(data)), nil)
	wantStatus(t, "put on a full disk", err, protocol.ENOSPC)
	wantNoFile(t, board, "/.data.bin.webrepl-tmp")

	m := newMarker("listed")
	typeLine(t, c, "import os; print(sorted(os.listdir('/')))")
	listing := term.until("]")
	if strings.Contains(listing, "webrepl-tmp") || !strings.Contains(listing, "'data.bin'") {
		t.Errorf("the board's files after the failed put: %q", listing)
	}
	typeMarker(t, c, m)
	term.until(m.out)
	var got bytes.Buffer
	if _, err := c.Get(ctx, "data.bin", &got, nil); err != nil {
		t.Fatalf("get after the failed put: %v", err)
	}
	if !bytes.Equal(got.Bytes(), old) {
		t.Errorf("data.bin after the failed put: %d bytes, not the %d old ones", got.Len(), len(old))
	}
	// With the temporary file gone, a file that fits only beside the old
	// one does fit.
	small := make([]byte, 16<<10)
	if err := c.Put(ctx, "small.bin", bytes.NewReader(small), int64(len(small)), nil); err != nil {
		t.Fatalf("put of a file that fits: %v", err)
	}
}

// traceWrites returns what a bridge's trace shows was written to the
// board, one chunk per element.
func traceWrites(t *testing.T, trace string) []string {
	t.Helper()
	var out []string
	for line := range strings.Lines(trace) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), " ", 5)
		if len(f) != 5 {
			t.Fatalf("trace line %q", line)
		}
		if f[2] != ">" {
			continue
		}
		s, err := strconv.Unquote(f[4])
		if err != nil {
			t.Fatalf("trace line %q: %v", line, err)
		}
		out = append(out, s)
	}
	return out
}

// TestVersionOfABoardWithoutBanner logs in to a board that booted before
// the bridge opened it and has printed nothing since: GET_VER answers
// 0.0.0 and sends nothing to the board (it may be running a program).
// Once the board shows its prompt, GET_VER asks it through the raw REPL
// and answers its real version, and the terminal gets a fresh prompt and
// nothing of the raw REPL.
func TestVersionOfABoardWithoutBanner(t *testing.T) {
	leakcheck.Check(t)
	want := harnessVersion(t)
	_, cfg := startBoard(t, &mpboard.Options{NoBanner: true})
	var trace syncBuffer
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{Trace: &trace})
	c := login(t, br.URL, testPassword)
	watcher := login(t, br.URL+"?observe", testPassword)
	term := newTermReader(t, "controller", c)
	obs := newTermReader(t, "observer", watcher)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != (protocol.Version{}) {
		t.Errorf("GET_VER before the board showed a prompt: %v, want 0.0.0", v)
	}
	if w := traceWrites(t, trace.String()); len(w) != 0 {
		t.Fatalf("GET_VER before the board showed a prompt sent %q to the board", w)
	}

	// The login banner ends with a prompt of the bridge's (the client
	// keeps ">>> " of "\r\nWebREPL connected\r\n>>> "); the board's own
	// follows Enter.
	term.until(">>> ")
	c.Write([]byte("\r"))
	term.until(freshPrompt)
	obs.until(freshPrompt)
	v, err = c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != want {
		t.Errorf("GET_VER at the prompt: %v, want the board's %v", v, want)
	}
	if w := strings.Join(traceWrites(t, trace.String()), ""); !strings.Contains(w, "\x01") || !strings.Contains(w, "sys.implementation.version") {
		t.Errorf("GET_VER at the prompt did not ask the board through the raw REPL: it sent %q", w)
	}
	m := newMarker("versioned")
	typeMarker(t, c, m)
	for _, r := range []*termReader{term, obs} {
		if got := r.sinceDrain(m); got != freshPrompt {
			t.Errorf("%s: GET_VER at the prompt showed %q on the terminal, want only a fresh prompt %q", r.name, got, freshPrompt)
		}
	}
}
