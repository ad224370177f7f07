package protocol

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawTransports runs a test over a stream with read deadlines (reads
// bounded by SetReadDeadline) and over one without (reads in helper
// goroutines).
var rawTransports = []struct {
	name string
	wrap func(*rawConn) io.ReadWriter
}{
	{"deadline", func(c *rawConn) io.ReadWriter { return c }},
	{"goroutine", func(c *rawConn) io.ReadWriter { return rawNoDeadline{c} }},
}

// rawTestOptions are quick options for tests; change returns a modified
// copy.
func rawTestOptions(change func(*RawOptions)) *RawOptions {
	o := &RawOptions{Silence: 3 * time.Second, quiet: 5 * time.Millisecond}
	if change != nil {
		change(o)
	}
	return o
}

func enterRawModel(t *testing.T, cfg rawModelConfig, rwOf func(*rawConn) io.ReadWriter, opts *RawOptions) (*Raw, *rawModel, *rawConn) {
	t.Helper()
	m, host := startRawModel(t, cfg)
	opts.Logf = t.Logf
	r, err := EnterRaw(testCtx(t), rwOf(host), opts)
	if err != nil {
		t.Fatalf("EnterRaw: %v", err)
	}
	return r, m, host
}

func rawExec(t *testing.T, r *Raw, code string) string {
	t.Helper()
	out, err := r.ExecCapture(testCtx(t), []byte(code))
	if err != nil {
		t.Fatalf("Exec(%q): %v", code, err)
	}
	return string(out)
}

func rawLongCode(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		b.WriteString("# line of filler text for a long program\n")
	}
	return b.String()[:n]
}

func TestRawExec(t *testing.T) {
	tests := []struct {
		name          string
		cfg           rawModelConfig
		opts          func(*RawOptions)
		wantPaste     bool
		pasteRequests int // after the four Execs below
	}{
		{name: "raw-paste window 128", wantPaste: true, pasteRequests: 4},
		{name: "raw-paste window 32 (nrf)", cfg: rawModelConfig{window: 32}, wantPaste: true, pasteRequests: 4},
		{name: "raw-paste window 1", cfg: rawModelConfig{window: 1}, wantPaste: true, pasteRequests: 4},
		{name: "firmware without raw-paste (ra)", cfg: rawModelConfig{paste: "none"}, pasteRequests: 1},
		{name: "raw-paste refused (R\\x00)", cfg: rawModelConfig{paste: "refuse"}, pasteRequests: 1},
		{name: "NoRawPaste", opts: func(o *RawOptions) { o.NoRawPaste = true; o.ChunkDelay = -1 }, pasteRequests: 0},
		{name: "LF line ends", cfg: rawModelConfig{lf: "\n"}, wantPaste: true, pasteRequests: 4},
		{name: "LF line ends, plain", cfg: rawModelConfig{lf: "\n", paste: "none"}, pasteRequests: 1},
		{name: "output one byte at a time", cfg: rawModelConfig{piece: 1, window: 32}, wantPaste: true, pasteRequests: 4},
		{name: "output one byte at a time, plain", cfg: rawModelConfig{piece: 1, paste: "refuse"}, pasteRequests: 1},
		{
			name: "boot noise",
			cfg: rawModelConfig{
				bootNoise:  "\x00\xff\xfeets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET)\r\n\xc3raw REPL; CTRL",
				enterNoise: "\xff raw REPL; CTRL-B to exit? no\r\nraw REPL; CTRL-B to exit\r\nX\r\n",
			},
			wantPaste: true, pasteRequests: 4,
		},
	}
	for _, tr := range rawTransports {
		for _, tt := range tests {
			t.Run(tr.name+"/"+tt.name, func(t *testing.T) {
				r, m, _ := enterRawModel(t, tt.cfg, tr.wrap, rawTestOptions(tt.opts))
				lf := tt.cfg.lf
				if lf == "" {
					lf = "\r\n"
				}
				if r.RawPaste() {
					t.Errorf("RawPaste() = true before the first Exec")
				}
				if got, want := rawExec(t, r, "print(1+1)"), "2"+lf; got != want {
					t.Errorf("print(1+1): got %q, want %q", got, want)
				}
				long := rawLongCode(1000)
				if got, want := rawExec(t, r, long), "1000 bytes"+lf; got != want {
					t.Errorf("long code: got %q, want %q", got, want)
				}
				if got := m.lastCode(); got != long {
					t.Errorf("the board got %d bytes of code, want the %d sent", len(got), len(long))
				}
				_, err := r.ExecCapture(testCtx(t), []byte("raise OSError(2)"))
				var ee *ExecError
				if !errors.As(err, &ee) || ee.Type != "OSError" || ee.Errno != 2 || !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("raise OSError(2): got %#v (%v), want an *ExecError OSError errno 2", err, err)
				}
				if got, err := r.Eval(testCtx(t), "1+2"); err != nil || string(got) != "3" {
					t.Errorf("Eval(1+2) = %q, %v; want \"3\"", got, err)
				}
				if got := r.RawPaste(); got != tt.wantPaste {
					t.Errorf("RawPaste() = %v, want %v", got, tt.wantPaste)
				}
				if n, _, _ := m.counts(); n != tt.pasteRequests {
					t.Errorf("the board got %d raw-paste requests, want %d", n, tt.pasteRequests)
				}
			})
		}
	}
}

// TestRawPasteCredit sends code of many sizes through small windows; the
// model board fails the test if the host ever sends more than granted.
func TestRawPasteCredit(t *testing.T) {
	for _, window := range []int{128, 32, 7} {
		t.Run("window "+strconv.Itoa(window), func(t *testing.T) {
			r, m, _ := enterRawModel(t, rawModelConfig{window: window}, rawTransports[1].wrap, rawTestOptions(nil))
			for _, n := range []int{1, window - 1, window, window + 1, 2 * window, 2*window + 1, 3*window - 1, 1000, 4096} {
				if n < 1 {
					continue
				}
				code := rawLongCode(n)
				if got, want := rawExec(t, r, code), strconv.Itoa(n)+" bytes\r\n"; got != want {
					t.Errorf("%d bytes: got %q, want %q", n, got, want)
				}
				if got := m.lastCode(); got != code {
					t.Errorf("%d bytes: the board got %d bytes", n, len(got))
				}
			}
			if !r.RawPaste() {
				t.Errorf("RawPaste() = false")
			}
		})
	}
}

// TestRawModelCatchesOverrun checks the model's credit check itself: a
// host that ignores the window is caught.
func TestRawModelCatchesOverrun(t *testing.T) {
	m, host := startRawModel(t, rawModelConfig{window: 32})
	m.mu.Lock()
	m.expectViolations = true
	m.mu.Unlock()
	in := newRawInput(host)
	r := &Raw{rw: host, in: in}
	r.cfg, _ = rawTestOptions(nil).config()
	ctx := testCtx(t)
	if _, err := host.Write([]byte("\r\x01")); err != nil {
		t.Fatal(err)
	}
	if err := r.waitBanner(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Write([]byte(rawPasteAsk)); err != nil {
		t.Fatal(err)
	}
	if err := r.need(ctx, 5, "the raw-paste header"); err != nil {
		t.Fatal(err)
	}
	if got := string(in.pend()[:5]); got != "R\x01\x20\x00\x01" {
		t.Fatalf("raw-paste header %q", got)
	}
	if _, err := host.Write(bytes.Repeat([]byte("x"), 3*32)); err != nil { // 2 windows granted
		t.Fatal(err)
	}
	select {
	case v := <-m.violation:
		t.Logf("caught: %s", v)
	case <-ctx.Done():
		t.Fatal("the model did not notice the overrun")
	}
}

func TestRawPasteEarlyAbort(t *testing.T) {
	for _, tr := range rawTransports {
		for _, n := range []int{0, 2000} {
			t.Run(tr.name+"/filler "+strconv.Itoa(n), func(t *testing.T) {
				r, m, _ := enterRawModel(t, rawModelConfig{window: 32}, tr.wrap, rawTestOptions(nil))
				code := rawSyntaxMarker + rawLongCode(n)
				out, err := r.ExecCapture(testCtx(t), []byte(code))
				var ee *ExecError
				if !errors.As(err, &ee) || ee.Type != "SyntaxError" || ee.Message != "invalid syntax" {
					t.Fatalf("got %q, %v; want a SyntaxError", out, err)
				}
				if len(out) != 0 {
					t.Errorf("stdout %q, want none", out)
				}
				m.mu.Lock()
				got := m.abortReceived
				m.mu.Unlock()
				if n > 0 && got >= len(code) {
					t.Errorf("the host sent all %d bytes after the board aborted", got)
				}
				t.Logf("the board received %d of %d bytes", got, len(code))
				if out := rawExec(t, r, "print(1+1)"); out != "2\r\n" {
					t.Errorf("after the abort: got %q", out)
				}
			})
		}
	}
}

// TestRawPasteCancel cancels ctx while the host waits for raw-paste
// credit: it sends Ctrl-C, the board ends the paste with
// KeyboardInterrupt, and the Raw stays usable.
func TestRawPasteCancel(t *testing.T) {
	for _, tr := range rawTransports {
		t.Run(tr.name, func(t *testing.T) {
			r, m, _ := enterRawModel(t, rawModelConfig{window: 32}, tr.wrap, rawTestOptions(nil))
			m.stall.Store(true)
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- r.Exec(ctx, []byte(rawLongCode(500)), nil) }()
			select {
			case <-m.stalled:
			case err := <-done:
				t.Fatalf("Exec returned early: %v", err)
			}
			cancel()
			err := <-done
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if _, _, n := m.counts(); n != 1 {
				t.Errorf("the board saw %d interrupts, want 1", n)
			}
			m.stall.Store(false)
			if out := rawExec(t, r, "print(1+1)"); out != "2\r\n" {
				t.Errorf("after the cancel: got %q", out)
			}
		})
	}
}

// rawSignalWriter signals when what it has received contains want.
type rawSignalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (w *rawSignalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.want)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *rawSignalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestRawCancelFollow cancels ctx while code runs: the output so far has
// been streamed, Ctrl-C goes to the board, and the Raw stays usable.
func TestRawCancelFollow(t *testing.T) {
	for _, tr := range rawTransports {
		t.Run(tr.name, func(t *testing.T) {
			r, m, _ := enterRawModel(t, rawModelConfig{}, tr.wrap, rawTestOptions(nil))
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			w := &rawSignalWriter{want: "partial\r\n", seen: make(chan struct{})}
			done := make(chan error, 1)
			go func() { done <- r.Exec(ctx, []byte("print('partial')\nloop"), w) }()
			select {
			case <-w.seen: // streamed before the code ended
			case err := <-done:
				t.Fatalf("Exec returned early: %v", err)
			}
			cancel()
			err := <-done
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if _, _, n := m.counts(); n != 1 {
				t.Errorf("the board saw %d interrupts, want 1", n)
			}
			if got := w.String(); got != "partial\r\n" {
				t.Errorf("stdout %q", got)
			}
			if out := rawExec(t, r, "print(1+1)"); out != "2\r\n" {
				t.Errorf("after the cancel: got %q", out)
			}
		})
	}
}

func TestRawDeadlineFollow(t *testing.T) {
	r, m, _ := enterRawModel(t, rawModelConfig{}, rawTransports[0].wrap, rawTestOptions(nil))
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	err := r.Exec(ctx, []byte("loop"), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	if _, _, n := m.counts(); n != 1 {
		t.Errorf("the board saw %d interrupts, want 1", n)
	}
	if out := rawExec(t, r, "print(1+1)"); out != "2\r\n" {
		t.Errorf("after the timeout: got %q", out)
	}
}

// TestRawSilenceNotWhileRunning: code may be silent for longer than
// Silence.
func TestRawSilenceNotWhileRunning(t *testing.T) {
	for _, tr := range rawTransports {
		t.Run(tr.name, func(t *testing.T) {
			opts := rawTestOptions(func(o *RawOptions) { o.Silence = 50 * time.Millisecond })
			r, _, _ := enterRawModel(t, rawModelConfig{slow: 200 * time.Millisecond}, tr.wrap, opts)
			if out := rawExec(t, r, "slow"); out != "done\r\n" {
				t.Errorf("got %q", out)
			}
		})
	}
}

func TestRawSilentBoard(t *testing.T) {
	for _, tr := range rawTransports {
		t.Run(tr.name, func(t *testing.T) {
			m, host := startRawModel(t, rawModelConfig{})
			m.mute.Store(true)
			start := time.Now()
			opts := rawTestOptions(func(o *RawOptions) { o.Silence = 200 * time.Millisecond })
			r, err := EnterRaw(testCtx(t), tr.wrap(host), opts)
			if r != nil || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, ErrNoResponse) {
				t.Fatalf("got %v, %v; want an error matching os.ErrDeadlineExceeded and ErrNoResponse", r, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
			t.Log(err)
		})
	}
}

// TestRawSilentMidSession: a board that stops answering makes the Raw
// unusable until Interrupt gets an answer again.
func TestRawSilentMidSession(t *testing.T) {
	for _, tr := range rawTransports {
		t.Run(tr.name, func(t *testing.T) {
			opts := rawTestOptions(func(o *RawOptions) { o.Silence = 100 * time.Millisecond })
			r, m, _ := enterRawModel(t, rawModelConfig{}, tr.wrap, opts)
			m.mute.Store(true)
			err := r.Exec(testCtx(t), []byte("print(1+1)"), nil)
			if !errors.Is(err, ErrNoResponse) || !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("got %v, want ErrNoResponse", err)
			}
			err = r.Exec(testCtx(t), []byte("print(1+1)"), nil)
			if !errors.Is(err, ErrNoResponse) || !strings.Contains(err.Error(), "unusable") {
				t.Fatalf("second Exec: got %v, want unusable", err)
			}
			if err := r.Interrupt(testCtx(t)); !errors.Is(err, ErrNoResponse) {
				t.Fatalf("Interrupt of a silent board: got %v", err)
			}
			m.mute.Store(false)
			if err := r.Interrupt(testCtx(t)); err != nil {
				t.Fatalf("Interrupt: %v", err)
			}
			if out := rawExec(t, r, "print(1+1)"); out != "2\r\n" {
				t.Errorf("after Interrupt: got %q", out)
			}
		})
	}
}

func TestRawPlainChunks(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		delay      time.Duration
		codeLen    int
		wantWrites []int
	}{
		{"64 bytes, 5 ms", 64, 5 * time.Millisecond, 200, []int{64, 64, 64, 8, 1}},
		{"defaults", 0, 0, 600, []int{256, 256, 88, 1}},
		{"one chunk", 0, 0, 256, []int{256, 1}},
		{"no pause", 100, -1, 250, []int{100, 100, 50, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := rawTestOptions(func(o *RawOptions) {
				o.NoRawPaste, o.ChunkSize, o.ChunkDelay = true, tt.size, tt.delay
			})
			r, m, host := enterRawModel(t, rawModelConfig{}, rawTransports[0].wrap, opts)
			host.out.takeWrites()
			code := rawLongCode(tt.codeLen)
			if got, want := rawExec(t, r, code), strconv.Itoa(tt.codeLen)+" bytes\r\n"; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			if got := m.lastCode(); got != code {
				t.Errorf("the board got %d bytes", len(got))
			}
			writes := host.out.takeWrites()
			var sizes []int
			for _, w := range writes {
				sizes = append(sizes, w.n)
			}
			if !equalInts(sizes, tt.wantWrites) {
				t.Fatalf("writes %v, want %v", sizes, tt.wantWrites)
			}
			delay := tt.delay
			if delay == 0 {
				delay = DefaultRawChunkDelay
			}
			for i := 1; i < len(writes)-1 && delay > 0; i++ {
				if gap := writes[i].at.Sub(writes[i-1].at); gap < delay {
					t.Errorf("gap before chunk %d: %v, want at least %v", i, gap, delay)
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRawSoftReset(t *testing.T) {
	for _, lf := range []string{"\r\n", "\n"} {
		t.Run(strings.ReplaceAll(strings.ReplaceAll(lf, "\r", "CR"), "\n", "LF"), func(t *testing.T) {
			opts := rawTestOptions(func(o *RawOptions) { o.SoftReset = true })
			r, m, _ := enterRawModel(t, rawModelConfig{lf: lf}, rawTransports[1].wrap, opts)
			if _, n, _ := m.counts(); n != 1 {
				t.Errorf("%d soft resets after EnterRaw, want 1", n)
			}
			if err := r.SoftReset(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if _, n, _ := m.counts(); n != 2 {
				t.Errorf("%d soft resets, want 2", n)
			}
			if out := rawExec(t, r, "print(1+1)"); out != "2"+lf {
				t.Errorf("got %q", out)
			}
		})
	}
}

// TestRawSysExit: sys.exit() soft-resets the board instead of printing
// the prompt.
func TestRawSysExit(t *testing.T) {
	r, m, _ := enterRawModel(t, rawModelConfig{}, rawTransports[0].wrap, rawTestOptions(nil))
	if err := r.Exec(testCtx(t), []byte("import sys\nsys.exit()"), nil); err != nil {
		t.Fatal(err)
	}
	if _, n, _ := m.counts(); n != 1 {
		t.Errorf("%d soft resets, want 1", n)
	}
	if out := rawExec(t, r, "print(1+1)"); out != "2\r\n" {
		t.Errorf("got %q", out)
	}
}

// TestRawInterrupt: entering stops code that was already running;
// Interrupt at the prompt is harmless.
func TestRawInterrupt(t *testing.T) {
	for _, tr := range rawTransports {
		t.Run(tr.name, func(t *testing.T) {
			r, m, _ := enterRawModel(t, rawModelConfig{running: true}, tr.wrap, rawTestOptions(nil))
			if _, _, n := m.counts(); n != 1 {
				t.Errorf("%d interrupts after EnterRaw, want 1", n)
			}
			if err := r.Interrupt(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if out := rawExec(t, r, "print(1+1)"); out != "2\r\n" {
				t.Errorf("got %q", out)
			}
		})
	}
}

func TestRawExit(t *testing.T) {
	r, m, _ := enterRawModel(t, rawModelConfig{}, rawTransports[1].wrap, rawTestOptions(nil))
	rawExec(t, r, "print(1+1)")
	if err := r.Exit(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.friendly:
	case <-testCtx(t).Done():
		t.Fatal("the board did not go back to the friendly REPL")
	}
	if err := r.Exit(testCtx(t)); err != nil {
		t.Errorf("second Exit: %v", err)
	}
	if err := r.Exec(testCtx(t), []byte("print(1+1)"), nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Exec after Exit: got %v, want net.ErrClosed", err)
	}
}

func TestRawEval(t *testing.T) {
	r, _, _ := enterRawModel(t, rawModelConfig{lf: "\n"}, rawTransports[0].wrap, rawTestOptions(nil))
	tests := []struct{ expr, want string }{
		{"1+2", "3"},
		{"'a'+'b'", "'ab'"},
	}
	for _, tt := range tests {
		got, err := r.Eval(testCtx(t), tt.expr)
		if err != nil || string(got) != tt.want {
			t.Errorf("Eval(%q) = %q, %v; want %q", tt.expr, got, err, tt.want)
		}
	}
	_, err := r.Eval(testCtx(t), "nope")
	var ee *ExecError
	if !errors.As(err, &ee) || ee.Type != "NameError" {
		t.Errorf("Eval(nope): got %v, want a NameError", err)
	}
	if want := "webrepl: board: NameError: name 'nope' isn't defined"; err == nil || err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}

func TestRawBadCode(t *testing.T) {
	r, m, _ := enterRawModel(t, rawModelConfig{}, rawTransports[0].wrap, rawTestOptions(nil))
	for _, code := range []string{"a\x03b", "print(1)\x04"} {
		if err := r.Exec(testCtx(t), []byte(code), nil); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Exec(%q): got %v, want fs.ErrInvalid", code, err)
		}
	}
	// Empty code must not soft-reset the board.
	if out := rawExec(t, r, ""); out != "" {
		t.Errorf("empty code printed %q", out)
	}
	if _, n, _ := m.counts(); n != 0 {
		t.Errorf("%d soft resets", n)
	}
	if out := rawExec(t, r, "print(1+1)"); out != "2\r\n" {
		t.Errorf("got %q", out)
	}
}

// TestRawHangup: the stream ends while code runs.
func TestRawHangup(t *testing.T) {
	for _, tr := range rawTransports {
		t.Run(tr.name, func(t *testing.T) {
			r, _, _ := enterRawModel(t, rawModelConfig{}, tr.wrap, rawTestOptions(nil))
			out, err := r.ExecCapture(testCtx(t), []byte("hangup"))
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("got %q, %v; want io.ErrUnexpectedEOF", out, err)
			}
			if string(out) != "bye" {
				t.Errorf("stdout %q", out)
			}
		})
	}
}

// TestRawConcurrent: operations from several goroutines take turns.
func TestRawConcurrent(t *testing.T) {
	r, _, _ := enterRawModel(t, rawModelConfig{window: 32}, rawTransports[1].wrap, rawTestOptions(nil))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for range 4 {
		wg.Go(func() {
			for range 5 {
				out, err := r.ExecCapture(testCtx(t), []byte("print(1+1)"))
				if err == nil && string(out) != "2\r\n" {
					err = errors.New("got " + string(out))
				}
				if err != nil {
					errs <- err
				}
				_ = r.RawPaste()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRawOptions(t *testing.T) {
	tests := []struct {
		name string
		opts *RawOptions
		ok   bool
	}{
		{"nil", nil, true},
		{"zero", &RawOptions{}, true},
		{"negative Silence", &RawOptions{Silence: -1}, false},
		{"negative ChunkSize", &RawOptions{ChunkSize: -1}, false},
		{"negative ChunkDelay", &RawOptions{ChunkDelay: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.opts.config()
			if (err == nil) != tt.ok {
				t.Fatalf("config: %v", err)
			}
			if err != nil {
				return
			}
			if c.silence <= 0 || c.chunkSize <= 0 || c.quiet <= 0 || c.drainMax <= 0 {
				t.Errorf("defaults not filled: %+v", c)
			}
		})
	}
	if _, err := EnterRaw(context.Background(), rawNoDeadline{}, &RawOptions{Silence: -1}); err == nil {
		t.Error("EnterRaw accepted negative Silence")
	}
}

type rawFailingWriter struct{}

func (rawFailingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestRawStdoutError: a failing stdout writer fails Exec, but the answer
// is still read to its end and the Raw stays usable.
func TestRawStdoutError(t *testing.T) {
	r, _, _ := enterRawModel(t, rawModelConfig{}, rawTransports[0].wrap, rawTestOptions(nil))
	err := r.Exec(testCtx(t), []byte("print(1+1)"), rawFailingWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want the write error", err)
	}
	if out := rawExec(t, r, "print(1+1)"); out != "2\r\n" {
		t.Errorf("got %q", out)
	}
}
