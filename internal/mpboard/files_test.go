//go:build linux

package mpboard_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"webrepl/internal/leakcheck"
	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/protocol"
)

// put writes data to name through fsys and commits it.
func put(t *testing.T, fsys protocol.FS, name string, data []byte) {
	t.Helper()
	pf, err := fsys.Create(name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	// In odd pieces, as a WebREPL session delivers them.
	for rest := data; len(rest) > 0; {
		k := min(len(rest), 1000+len(rest)%777)
		if n, err := pf.Write(rest[:k]); n != k || err != nil {
			pf.Abort()
			t.Fatalf("write %s: %d, %v", name, n, err)
		}
		rest = rest[k:]
	}
	if err := pf.Commit(); err != nil {
		t.Fatalf("commit %s: %v", name, err)
	}
}

// get reads name through fsys, with reads of the given size.
func get(t *testing.T, fsys protocol.FS, name string, readSize int) []byte {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, readSize)
	for {
		n, err := f.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
	}
}

// boardSum is Python that prints the SHA-256 of a board file in hex.
func boardSum(name string) string {
	return fmt.Sprintf("import hashlib, binascii\nprint(binascii.hexlify(hashlib.sha256(open(%q, 'rb').read()).digest()).decode())", name)
}

func hexSum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// wantStatus checks the error and the WB status an extended device would
// answer for it.
func wantStatus(t *testing.T, what string, err error, want syscall.Errno, status uint16) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: %v, want %v", what, err, want)
		return
	}
	if _, ok := errors.AsType[*fs.PathError](err); !ok {
		t.Errorf("%s: %T is no *fs.PathError", what, err)
	}
	if got := protocol.ErrorStatus(err); got != status {
		t.Errorf("%s: status %d, want %d", what, got, status)
	}
}

func TestFSPutThenPython(t *testing.T) {
	b, l := start(t, nil)
	l.enterRaw()
	fsys := b.FS()
	put(t, fsys, "/x.txt", []byte("hello from the host"))
	if got := l.mustExec("print(open('/x.txt').read())"); lf(got) != "hello from the host\n" {
		t.Errorf("the board reads %q", got)
	}
	// A relative name is relative to "/", whatever the REPL's cwd.
	l.mustExec("import os\nos.mkdir('/lib')\nos.chdir('/lib')")
	put(t, fsys, "lib/m.py", []byte("X = 42\n"))
	put(t, fsys, "top.txt", []byte("top"))
	if got := l.mustExec("import sys\nsys.path.append('/lib')\nimport m\nprint(m.X, open('/top.txt').read(), sorted(os.listdir('/lib')))"); lf(got) != "42 top ['m.py']\n" {
		t.Errorf("got %q", got)
	}
	// A PUT replaces a file; an empty one too.
	put(t, fsys, "/x.txt", nil)
	if got := l.mustExec("print(repr(open('/x.txt').read()))"); lf(got) != "''\n" {
		t.Errorf("after an empty PUT: %q", got)
	}
	fi, err := fsys.Stat("/lib/m.py")
	if err != nil || fi.Size() != 7 || fi.IsDir() || fi.Name() != "m.py" {
		t.Errorf("stat: %v, %v", fi, err)
	}
	if fi, err := fsys.Stat("lib"); err != nil || !fi.IsDir() {
		t.Errorf("stat lib: %v, %v", fi, err)
	}
}

func TestFSPythonThenGet(t *testing.T) {
	b, l := start(t, nil)
	l.enterRaw()
	l.mustExec("import os\nos.mkdir('/d')\nopen('/d/f.txt', 'w').write('written by python\\n')\nos.chdir('/d')")
	for _, name := range []string{"/d/f.txt", "d/f.txt", "/d/../d/f.txt"} {
		if got := get(t, b.FS(), name, 512); string(got) != "written by python\n" {
			t.Errorf("get %s: %q", name, got)
		}
	}
	// A file stays readable as it was when opened, while it is replaced.
	f, err := b.FS().Open("/d/f.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l.mustExec("os.remove('/d/f.txt')")
	if got, err := io.ReadAll(f); string(got) != "written by python\n" || err != nil {
		t.Errorf("after the file was removed: %q, %v", got, err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestFSErrors(t *testing.T) {
	b, l := start(t, nil)
	l.enterRaw()
	l.mustExec("import os\nos.mkdir('/dir')\nopen('/file', 'w').write('x')")
	fsys := b.FS()

	_, err := fsys.Open("/missing.py")
	wantStatus(t, "open missing", err, syscall.ENOENT, protocol.ENOENT)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open missing: %v does not match fs.ErrNotExist", err)
	}
	_, err = fsys.Open("")
	wantStatus(t, "open empty name", err, syscall.ENOENT, protocol.ENOENT)
	_, err = fsys.Stat("/missing.py")
	wantStatus(t, "stat missing", err, syscall.ENOENT, protocol.ENOENT)
	_, err = fsys.Open("/dir")
	wantStatus(t, "open a directory", err, syscall.EISDIR, 21)
	_, err = fsys.Open("/")
	wantStatus(t, "open /", err, syscall.EISDIR, 21)
	_, err = fsys.Open("/file/x")
	wantStatus(t, "open under a file", err, syscall.ENOTDIR, 20)
	_, err = fsys.Open("/dev/null")
	wantStatus(t, "open a device", err, syscall.EINVAL, protocol.EINVAL)
	_, err = fsys.Open("/bad\x00name")
	wantStatus(t, "open a name with NUL", err, syscall.EINVAL, protocol.EINVAL)
	_, err = fsys.Open("/\xff.py")
	wantStatus(t, "open a name that is not UTF-8", err, syscall.EINVAL, protocol.EINVAL)

	_, err = fsys.Create("/dir")
	wantStatus(t, "create a directory", err, syscall.EISDIR, 21)
	_, err = fsys.Create("/dir/")
	wantStatus(t, "create dir/", err, syscall.EISDIR, 21)
	_, err = fsys.Create("/")
	wantStatus(t, "create /", err, syscall.EISDIR, 21)
	_, err = fsys.Create("/nodir/x.py")
	wantStatus(t, "create in a missing directory", err, syscall.ENOENT, protocol.ENOENT)
	_, err = fsys.Create("/file/x.py")
	wantStatus(t, "create under a file", err, syscall.ENOTDIR, 20)

	// The target turns into a directory before the commit.
	pf, err := fsys.Create("/late")
	if err != nil {
		t.Fatal(err)
	}
	pf.Write([]byte("data"))
	l.mustExec("os.mkdir('/late')")
	wantStatus(t, "commit over a directory", pf.Commit(), syscall.EISDIR, 21)
	if err := pf.Abort(); err != nil {
		t.Errorf("abort after a failed commit: %v", err)
	}
	// Nothing stays behind, and nothing was printed on the REPL (exec
	// checks for the OK that starts its answer).
	if got := l.mustExec("print(sorted(os.listdir('/')))"); !strings.Contains(got, "'dir', 'file', 'home', 'late', 'proc', 'tmp'") || strings.Contains(got, "webrepl-tmp") {
		t.Errorf("files: %q", got)
	}
}

func TestFSAbort(t *testing.T) {
	b, l := start(t, nil)
	l.enterRaw()
	before := l.mustExec("import os\nprint(sorted(os.listdir('/')))")
	l.mustExec("open('/keep.txt', 'w').write('old')")
	for _, name := range []string{"/new.bin", "/keep.txt"} {
		pf, err := b.FS().Create(name)
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("0123456789"), 10000) // more than a chunk
		if n, err := pf.Write(data); n != len(data) || err != nil {
			t.Fatalf("write: %d, %v", n, err)
		}
		// Nothing appears under the name before the commit.
		if got := l.mustExec(fmt.Sprintf("print(open(%q).read() if %q in os.listdir('/') else None)", name, name[1:])); lf(got) != map[string]string{"/new.bin": "None\n", "/keep.txt": "old\n"}[name] {
			t.Errorf("%s while pending: %q", name, got)
		}
		if err := pf.Abort(); err != nil {
			t.Fatalf("abort: %v", err)
		}
		if err := pf.Abort(); err != nil {
			t.Errorf("second abort: %v", err)
		}
		if err := pf.Commit(); !errors.Is(err, fs.ErrClosed) {
			t.Errorf("commit after abort: %v, want fs.ErrClosed", err)
		}
	}
	l.mustExec("os.remove('/keep.txt')")
	if after := l.mustExec("print(sorted(os.listdir('/')))"); after != before {
		t.Errorf("files after the aborts: %q, before: %q", after, before)
	}
	// Abort after Commit does nothing.
	pf, err := b.FS().Create("/c.txt")
	if err != nil {
		t.Fatal(err)
	}
	pf.Write([]byte("c"))
	if err := pf.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := pf.Abort(); err != nil {
		t.Errorf("abort after commit: %v", err)
	}
	if got := l.mustExec("print(open('/c.txt').read())"); lf(got) != "c\n" {
		t.Errorf("got %q", got)
	}
}

func TestFSEveryByteAndLargeFiles(t *testing.T) {
	b, l := start(t, nil)
	l.enterRaw()
	fsys := b.FS()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 300<<10+17)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"/all.bin", all},
		{"/big.bin", big},
	} {
		put(t, fsys, tc.name, tc.data)
		if got := l.mustExec(boardSum(tc.name)); lf(got) != hexSum(tc.data)+"\n" {
			t.Errorf("%s: the board's sha256 %q, want %s", tc.name, got, hexSum(tc.data))
		}
		for _, size := range []int{100, 64 << 10, 1 << 20} {
			if got := get(t, fsys, tc.name, size); !bytes.Equal(got, tc.data) {
				t.Errorf("%s read back %d bytes with %d-byte reads; differs", tc.name, len(got), size)
			}
		}
	}

	// A 300 KiB file made by the board, not periodic: a chain of hashes.
	l.mustExec("import hashlib\nx = b'seed'\nf = open('/chain.bin', 'wb')\n" +
		"for i in range(9600):\n    x = hashlib.sha256(x).digest()\n    f.write(x)\nf.close()")
	var want []byte
	x := []byte("seed")
	for range 9600 {
		s := sha256.Sum256(x)
		x = s[:]
		want = append(want, x...)
	}
	if got := get(t, fsys, "/chain.bin", 4096); !bytes.Equal(got, want) {
		t.Errorf("/chain.bin: got %d bytes (sha256 %s), want %d (%s)", len(got), hexSum(got), len(want), hexSum(want))
	}
}

func TestFSSoftReset(t *testing.T) {
	b, l := start(t, nil)
	l.enterRaw()
	fsys := b.FS()
	put(t, fsys, "/before.txt", []byte("before"))
	// A PUT in progress across the reset.
	pf, err := fsys.Create("/across.bin")
	if err != nil {
		t.Fatal(err)
	}
	first := bytes.Repeat([]byte("a"), 70000)
	if _, err := pf.Write(first); err != nil {
		t.Fatal(err)
	}
	l.mustExec("g = 1")
	l.send("\x04")
	l.until(softReboot + rawBanner)
	if _, exc := l.exec("print(g)"); !strings.Contains(exc, "NameError") {
		t.Fatalf("no reset: %q", exc)
	}
	second := bytes.Repeat([]byte("b"), 30000)
	if _, err := pf.Write(second); err != nil {
		t.Fatal(err)
	}
	if err := pf.Commit(); err != nil {
		t.Fatal(err)
	}
	put(t, fsys, "/after.txt", []byte("after"))
	got := l.mustExec("print(open('/before.txt').read(), open('/after.txt').read())\n" + boardSum("/across.bin"))
	if want := "before after\n" + hexSum(append(first, second...)) + "\n"; lf(got) != want {
		t.Errorf("after the reset the board has %q, want %q", got, want)
	}
	// And the other way: what the new interpreter writes.
	l.mustExec("open('/new.txt', 'w').write('from the new interpreter')")
	if got := get(t, fsys, "/new.txt", 100); string(got) != "from the new interpreter" {
		t.Errorf("got %q", got)
	}
	// A second reset, from sys.exit().
	l.send("import sys\nsys.exit()\x04")
	l.until(softReboot + rawBanner)
	put(t, fsys, "/third.txt", []byte("3"))
	if got := l.mustExec("print(open('/third.txt').read(), open('/new.txt').read())"); lf(got) != "3 from the new interpreter\n" {
		t.Errorf("got %q", got)
	}
}

// openTerm opens a Terminal with a line on it; the Terminal is closed after
// a minute, which ends a stuck test.
func openTerm(t *testing.T) (*mpboard.Terminal, *line) {
	t.Helper()
	leakcheck.Check(t)
	term := mpboardtest.Open(t, nil)
	timer := time.AfterFunc(time.Minute, func() { term.Close() })
	t.Cleanup(func() { timer.Stop() })
	return term, &line{t: t, rw: term}
}

// TestFSWhileRunning uses the files while a program runs and prints: the
// program waits for a file the host puts, and the REPL shows only the
// program's output.
func TestFSWhileRunning(t *testing.T) {
	term, l := openTerm(t)
	l.enterRaw()
	fsys := term.FS()
	l.send("import os, time\nn = 0\nwhile n < 3000:\n    try:\n        os.stat('/stop')\n        break\n" +
		"    except OSError:\n        pass\n    print('.')\n    time.sleep_ms(10)\n    n += 1\n" +
		"print('stopped' if n < 3000 else 'timed out', open('/stop').read() if n < 3000 else '')\x04")
	l.until("OK")
	l.until(".\n.\n") // running
	data := bytes.Repeat([]byte("0123456789abcdef"), 10000)
	put(t, fsys, "/data.bin", data)
	if got := get(t, fsys, "/data.bin", 4096); !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes; differ", len(got))
	}
	put(t, fsys, "/stop", []byte("now"))
	out := l.until("\x04>")
	body, _, _ := strings.Cut(lf(out), "stopped")
	if strings.Trim(body, ".\n") != "" || !strings.HasSuffix(lf(out), "stopped now\n\x04\x04>") {
		t.Errorf("the program printed %q", out)
	}
}

// TestFSIdleTerminal checks that file operations print nothing on an idle
// friendly REPL.
func TestFSIdleTerminal(t *testing.T) {
	term, l := openTerm(t)
	l.until(">>> ")
	put(t, term.FS(), "/a.txt", []byte("a"))
	if got := get(t, term.FS(), "/a.txt", 10); string(got) != "a" {
		t.Errorf("got %q", got)
	}
	l.send("print(open('/a.txt').read())\r")
	if got := l.until(">>> "); got != "print(open('/a.txt').read())\r\na\r\n>>> " && got != "print(open('/a.txt').read())\r\na\n>>> " {
		t.Errorf("the REPL shows %q", got)
	}
}

// TestFSBusyBoard checks that a program that computes without printing
// holds the file operations until it ends, and that Close releases them.
func TestFSBusyBoard(t *testing.T) {
	term, l := openTerm(t)
	l.enterRaw()
	fsys := term.FS()
	put(t, fsys, "/x", []byte("x"))

	// Held until the program ends. (The board's "OK" comes out with the
	// program's first output, or at its end: no output to wait for.)
	l.send("import time\nt = time.ticks_ms()\nwhile time.ticks_diff(time.ticks_ms(), t) < 700:\n    pass\n\x04")
	time.Sleep(100 * time.Millisecond)
	begin := time.Now()
	if got := get(t, fsys, "/x", 10); string(got) != "x" {
		t.Errorf("got %q", got)
	}
	t.Logf("a GET during a 700 ms computation took %v", time.Since(begin))
	l.until("OK\x04\x04>")

	// Released by Close.
	l.send("while True:\n    pass\n\x04")
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		_, err := fsys.Stat("/x")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("stat on a busy board returned %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	term.Close()
	select {
	case err := <-done:
		if !errors.Is(err, mpboard.ErrChannelClosed) {
			t.Errorf("stat cut by Close: %v, want ErrChannelClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release the stat")
	}
	if _, err := fsys.Open("/x"); !errors.Is(err, mpboard.ErrChannelClosed) {
		t.Errorf("open after Close: %v, want ErrChannelClosed", err)
	}
	if _, err := fsys.Create("/y"); !errors.Is(err, mpboard.ErrChannelClosed) {
		t.Errorf("create after Close: %v, want ErrChannelClosed", err)
	}
}

// TestFSConcurrent runs PUTs and GETs from several goroutines while the
// REPL is in use.
func TestFSConcurrent(t *testing.T) {
	term, l := openTerm(t)
	l.enterRaw()
	fsys := term.FS()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		wg.Go(func() {
			name := fmt.Sprintf("/c%d.bin", i)
			data := bytes.Repeat([]byte{byte(i)}, 100000+i)
			for range 3 {
				pf, err := fsys.Create(name)
				if err != nil {
					errs <- err
					return
				}
				pf.Write(data)
				if err := pf.Commit(); err != nil {
					errs <- err
					return
				}
				f, err := fsys.Open(name)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(f)
				f.Close()
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s: %d bytes, %v", name, len(got), err)
					return
				}
			}
		})
	}
	for range 5 {
		if got := l.mustExec("print(6*7)"); lf(got) != "42\n" {
			t.Errorf("got %q", got)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := l.mustExec("import os\nprint(sorted((n, os.stat('/' + n)[6]) for n in os.listdir('/') if n.startswith('c')))")
	if want := "[('c0.bin', 100000), ('c1.bin', 100001), ('c2.bin', 100002), ('c3.bin', 100003)]\n"; lf(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestFSBoardClosed checks a Board's FS after Close.
func TestFSBoardClosed(t *testing.T) {
	b, _ := start(t, nil)
	fsys := b.FS()
	put(t, fsys, "/x", []byte("x"))
	f, err := fsys.Open("/x")
	if err != nil {
		t.Fatal(err)
	}
	pf, err := fsys.Create("/y")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := f.Read(make([]byte, 10)); !errors.Is(err, mpboard.ErrChannelClosed) {
		t.Errorf("read after Close: %v", err)
	}
	if err := f.Close(); !errors.Is(err, mpboard.ErrChannelClosed) {
		t.Errorf("close after Close: %v", err)
	}
	if err := pf.Commit(); !errors.Is(err, mpboard.ErrChannelClosed) {
		t.Errorf("commit after Close: %v", err)
	}
	if _, err := fsys.Stat("/x"); !errors.Is(err, mpboard.ErrChannelClosed) {
		t.Errorf("stat after Close: %v", err)
	}
}
