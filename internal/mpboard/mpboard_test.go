//go:build linux

package mpboard_test

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"webrepl/internal/leakcheck"
	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
)

const (
	rawBanner  = "raw REPL; CTRL-B to exit\r\n>"
	softReboot = "MPY: soft reboot\r\n"
	banner     = "MicroPython v1.27.0 on 2025-12-10; JS with Emscripten\r\nType \"help()\" for more information.\r\n>>> "
)

// line is a host's end of a board's serial line: the pseudo-terminal's
// slave opened as a user opens /dev/ttyACM0.
type line struct {
	t   *testing.T
	f   *os.File      // the pseudo-terminal, or nil
	rw  io.ReadWriter // f, or a Terminal (whose test closes it on a timeout)
	buf []byte        // read, not yet consumed
}

func openLine(t *testing.T, b *mpboard.Board) *line {
	t.Helper()
	return openPath(t, b.Path)
}

// openPath opens the serial line at path as a plain file.
func openPath(t *testing.T, path string) *line {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &line{t: t, f: f, rw: f}
}

// deadline bounds the next reads, where the line supports it.
func (l *line) deadline() {
	if l.f != nil {
		l.f.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
}

func (l *line) send(s string) {
	l.t.Helper()
	if _, err := l.rw.Write([]byte(s)); err != nil {
		l.t.Fatalf("write %q: %v", s, err)
	}
}

// until reads until the output holds want, and consumes and returns the
// output up to and including it.
func (l *line) until(want string) string {
	l.t.Helper()
	l.deadline()
	buf := make([]byte, 4096)
	for {
		if i := bytes.Index(l.buf, []byte(want)); i >= 0 {
			got := string(l.buf[:i+len(want)])
			l.buf = l.buf[i+len(want):]
			return got
		}
		n, err := l.rw.Read(buf)
		l.buf = append(l.buf, buf[:n]...)
		if err != nil {
			l.t.Fatalf("waiting for %q: %v; got %q", want, err, l.buf)
		}
	}
}

// next consumes and returns the next n bytes of output.
func (l *line) next(n int) []byte {
	l.t.Helper()
	l.deadline()
	buf := make([]byte, 4096)
	for len(l.buf) < n {
		k, err := l.rw.Read(buf)
		l.buf = append(l.buf, buf[:k]...)
		if err != nil {
			l.t.Fatalf("waiting for %d bytes: %v; got %q", n, err, l.buf)
		}
	}
	got := bytes.Clone(l.buf[:n])
	l.buf = l.buf[n:]
	return got
}

// enterRaw waits for the first friendly prompt and enters the raw REPL.
func (l *line) enterRaw() {
	l.t.Helper()
	l.until(">>> ")
	l.send("\r\x01")
	l.until(rawBanner)
}

// exec runs code in the raw REPL and returns its output and its exception
// text.
func (l *line) exec(code string) (stdout, stderr string) {
	l.t.Helper()
	l.send(code + "\x04")
	if got := l.next(2); string(got) != "OK" {
		l.t.Fatalf("exec %q: got %q, want OK", code, got)
	}
	stdout = strings.TrimSuffix(l.until("\x04"), "\x04")
	stderr = strings.TrimSuffix(l.until("\x04>"), "\x04>")
	return stdout, stderr
}

// mustExec runs code and fails the test if it raised.
func (l *line) mustExec(code string) string {
	l.t.Helper()
	out, exc := l.exec(code)
	if exc != "" {
		l.t.Fatalf("exec %q: %s", code, exc)
	}
	return out
}

// lf turns the board's print line endings (a bare \n here, \r\n on MCU
// ports) into \n.
func lf(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

func start(t *testing.T, opts *mpboard.Options) (*mpboard.Board, *line) {
	t.Helper()
	leakcheck.Check(t)
	b := mpboardtest.Start(t, opts)
	return b, openLine(t, b)
}

func TestFriendlyREPL(t *testing.T) {
	_, l := start(t, nil)
	if got := l.until(">>> "); got != "\r\n"+banner {
		t.Errorf("start-up output %q, want %q", got, "\r\n"+banner)
	}
	l.send("1+2\r")
	if got := l.until(">>> "); !strings.Contains(got, "3") {
		t.Errorf("1+2 answered %q", got)
	}
}

func TestRawREPL(t *testing.T) {
	_, l := start(t, nil)
	l.enterRaw()
	l.send("print(1+1)\x04")
	if got := l.until("\x04>"); lf(got) != "OK2\n\x04\x04>" {
		t.Errorf("print(1+1) answered %q, want OK2\\n\\x04\\x04>", got)
	}
	if _, exc := l.exec("1/0"); !strings.Contains(exc, "ZeroDivisionError") {
		t.Errorf("1/0 raised %q", exc)
	}
	// Ctrl-C clears the line.
	if got := l.mustExec("print(3)\x03print(4)"); lf(got) != "4\n" {
		t.Errorf("after Ctrl-C: %q, want 4", got)
	}
	l.send("\x02")
	if got := l.until(">>> "); got != "\r\n"+banner {
		t.Errorf("Ctrl-B answered %q", got)
	}
}

func TestRawPasteRefused(t *testing.T) {
	_, l := start(t, nil)
	l.enterRaw()
	l.send("\x05A\x01")
	got := l.until(">")
	if !strings.HasPrefix(got, "ra") || got != rawBanner {
		t.Fatalf("raw-paste request answered %q, want %q (firmware without raw-paste)", got, rawBanner)
	}
	if got := l.mustExec("print(1+1)"); lf(got) != "2\n" {
		t.Errorf("after the refused raw-paste: %q", got)
	}
	// An unknown raw-paste command gets the firmware's own answer.
	l.send("\x05B\x01")
	if got := l.until(">"); got != "R\x00>" {
		t.Errorf("\\x05B\\x01 answered %q, want R\\x00>", got)
	}
	// In a longer line, Ctrl-A is a plain one.
	l.send("x\x05A\x01")
	if got := l.until(">"); got != rawBanner {
		t.Errorf("x\\x05A\\x01 answered %q, want %q", got, rawBanner)
	}
	if got := l.mustExec("print('still here')"); lf(got) != "still here\n" {
		t.Errorf("got %q", got)
	}
}

func TestSoftResetRaw(t *testing.T) {
	_, l := start(t, nil)
	l.enterRaw()
	l.mustExec("import os\ng = 1\nopen('/f.txt', 'w').write('x')\nos.mkdir('/lib')\nopen('/lib/m.bin', 'wb').write(bytes([0, 255, 4]))\nos.chdir('/lib')")
	l.send("\x04")
	if got, want := l.until(rawBanner), "OK\r\n"+softReboot+rawBanner; got != want {
		t.Errorf("Ctrl-D answered %q, want %q", got, want)
	}
	if got := l.mustExec("print(open('/f.txt').read(), open('/lib/m.bin', 'rb').read())"); lf(got) != "x b'\\x00\\xff\\x04'\n" {
		t.Errorf("files after the reset: %q", got)
	}
	if _, exc := l.exec("print(g)"); !strings.Contains(exc, "NameError") {
		t.Errorf("a global survived the reset: %q", exc)
	}
	if got := l.mustExec("import os\nprint(os.getcwd())"); lf(got) != "/\n" {
		t.Errorf("cwd after the reset: %q", got)
	}

	// sys.exit() resets too; /boot.py runs after a reset.
	l.mustExec("open('/boot.py', 'w').write('print(\"booted\")\\nbg = 7\\n')")
	l.send("import sys\nsys.exit()\x04")
	if got, want := l.until(rawBanner), "OK\x04\x04"+softReboot+"booted\n"+rawBanner; got != want {
		t.Errorf("sys.exit() answered %q, want %q", got, want)
	}
	if got := l.mustExec("print(bg)"); lf(got) != "7\n" {
		t.Errorf("boot.py's global: %q", got)
	}
}

func TestSoftResetFriendly(t *testing.T) {
	_, l := start(t, nil)
	l.enterRaw()
	l.send("\x02") // back to friendly: the reset below must stay there
	l.until(">>> ")
	l.send("g = 5\rprint('raw REPL; CTRL-B to exit')\r")
	l.until("exit')\r\n")
	l.until(">>> ")
	l.send("\x04")
	if got, want := l.until(">>> "), "\r\n"+softReboot+"\r\n"+banner; got != want {
		t.Errorf("Ctrl-D answered %q, want %q", got, want)
	}
	l.send("g\r")
	if got := l.until(">>> "); !strings.Contains(got, "NameError") {
		t.Errorf("a global survived the reset: %q", got)
	}
}

func TestBootNoise(t *testing.T) {
	_, l := start(t, &mpboard.Options{BootNoise: true})
	got := l.until(">>> ")
	noise, _, ok := strings.Cut(got, "MicroPython v")
	if !ok || !strings.Contains(noise, "rst:0x1") || utf8.ValidString(noise) {
		t.Errorf("start-up output %q, want noise with bytes that are not UTF-8 before the banner", got)
	}
}

func TestNoBanner(t *testing.T) {
	_, l := start(t, &mpboard.Options{NoBanner: true})
	l.send("\r")
	if got := l.until(">>> "); got != "\r\n>>> " {
		t.Errorf("got %q, want only the answer to \\r", got)
	}
}

func TestThrottle(t *testing.T) {
	const baud = 9600 // 960 bytes/s
	_, l := start(t, &mpboard.Options{Baud: baud})
	l.enterRaw()
	code := strings.Repeat("#", 479) + "\x04" // 480 bytes: 0.5 s on the wire
	begin := time.Now()
	l.send(code)
	got := l.until("\x04>")
	elapsed := time.Since(begin)
	if got != "OK\x04\x04>" {
		t.Errorf("got %q", got)
	}
	if min := 450 * time.Millisecond; elapsed < min {
		t.Errorf("480 bytes at %d baud took %v, want at least %v", baud, elapsed, min)
	}
	t.Logf("480 bytes in at %d baud: %v", baud, elapsed)

	// The other direction: 480 bytes of output for 22 bytes of input.
	begin = time.Now()
	l.send("print('#' * 478)\x04")
	got = l.until("\x04>")
	elapsed = time.Since(begin)
	if len(lf(got)) != len("OK\x04\x04>")+479 {
		t.Errorf("got %q", got)
	}
	if min := 450 * time.Millisecond; elapsed < min {
		t.Errorf("480 bytes out at %d baud took %v, want at least %v", baud, elapsed, min)
	}
	t.Logf("480 bytes out at %d baud: %v", baud, elapsed)
}

// TestLargeInput sends more than the harness queues before it pauses its
// input, as a host that writes a big file in one go.
func TestLargeInput(t *testing.T) {
	_, l := start(t, nil)
	l.enterRaw()
	code := strings.Repeat("#"+strings.Repeat("x", 98)+"\n", 2000) + "print('end')" // 200 kB
	if got := l.mustExec(code); lf(got) != "end\n" {
		t.Errorf("got %q", got)
	}
}

func TestEveryByteValue(t *testing.T) {
	_, l := start(t, nil)
	l.enterRaw()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	sum := sha256.Sum256(all)
	got := l.mustExec("import hashlib, binascii\nopen('/all.bin', 'wb').write(bytes(range(256)))\n" +
		"print(binascii.hexlify(hashlib.sha256(open('/all.bin', 'rb').read()).digest()).decode())")
	if want := hex.EncodeToString(sum[:]) + "\n"; lf(got) != want {
		t.Errorf("sha256 on the board %q, want %q", got, want)
	}
	// Every byte value back over the line, unchanged.
	l.send("import sys\nsys.stdout.buffer.write(open('/all.bin', 'rb').read())\x04")
	if got := l.next(2); string(got) != "OK" {
		t.Fatalf("got %q, want OK", got)
	}
	if got := l.next(256); !bytes.Equal(got, all) {
		t.Errorf("file read back as % x", got)
	}
	if got := l.next(3); string(got) != "\x04\x04>" {
		t.Errorf("got %q after the file", got)
	}
	// Bytes above 0x7f on the way in.
	if got := l.mustExec("s = 'é€'\nprint(len(s.encode()), s)"); lf(got) != "5 é€\n" {
		t.Errorf("got %q", got)
	}
}

func TestDeflate(t *testing.T) {
	_, l := start(t, nil)
	l.enterRaw()
	text := strings.Repeat("hello board ", 20)
	got := l.mustExec("import deflate, io, binascii\nb = io.BytesIO()\n" +
		"with deflate.DeflateIO(b, deflate.ZLIB) as d:\n    d.write(b'" + text + "')\n" +
		"print(binascii.hexlify(b.getvalue()).decode())\n" +
		"print(deflate.DeflateIO(io.BytesIO(b.getvalue()), deflate.ZLIB).read() == b'" + text + "')")
	lines := strings.Fields(got)
	if len(lines) != 2 || lines[1] != "True" {
		t.Fatalf("got %q", got)
	}
	z, err := hex.DecodeString(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	r, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(r)
	if err != nil || string(plain) != text {
		t.Errorf("the board's zlib stream inflates to %q, %v", plain, err)
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	b, l := start(t, nil)
	l.until(">>> ")
	// The host keeps the line open across Close, as a terminal program
	// would while a board is unplugged.
	pid := b.Pid()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("node (pid %d) after Close: %v, want no such process", pid, err)
	}
	if _, err := l.f.Write([]byte("1\r")); err == nil {
		t.Errorf("write to a closed board succeeded")
	}
}

func TestOpenStream(t *testing.T) {
	leakcheck.Check(t)
	s := mpboardtest.Open(t, &mpboard.Options{BootNoise: true})
	timer := time.AfterFunc(10*time.Second, func() { s.Close() })
	defer timer.Stop()
	var out []byte
	readUntil := func(want string) {
		t.Helper()
		buf := make([]byte, 1024)
		for !bytes.Contains(out, []byte(want)) {
			n, err := s.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				t.Fatalf("waiting for %q: %v; got %q", want, err, out)
			}
		}
	}
	readUntil(">>> ")
	if !bytes.Contains(out, []byte("rst:0x1")) {
		t.Errorf("no boot noise in %q", out)
	}
	if _, err := s.Write([]byte("6*7\r")); err != nil {
		t.Fatal(err)
	}
	readUntil("42")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("1")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v, want os.ErrClosed", err)
	}
}

func TestAvailable(t *testing.T) {
	err := mpboard.Available()
	if errors.Is(err, mpboard.ErrNoNode) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// A harness directory without node_modules says what to run.
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/board.mjs", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = mpboard.Start(&mpboard.Options{HarnessDir: dir})
	if !errors.Is(err, mpboard.ErrNotInstalled) || !strings.Contains(err.Error(), "npm ci") {
		t.Errorf("Start without node_modules: %v", err)
	}
}
