//go:build linux

package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"webrepl/internal/emulator"
	"webrepl/internal/emulator/emutest"
	"webrepl/internal/leakcheck"
	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
)

// boardLinks reach a real MicroPython (the WebAssembly port) three ways:
// its pseudo-terminal opened with the serial transport, as /dev/ttyACM0 is;
// its byte stream served on TCP, as ser2net serves a board; and a WebREPL
// device emulator whose REPL and files are the board's.
var boardLinks = []struct {
	name  string
	start func(t *testing.T) []string // the flags that reach it
}{
	{"serial", func(t *testing.T) []string {
		b := mpboardtest.Start(t, nil)
		return []string{"-d", b.Path}
	}},
	{"tcp", func(t *testing.T) []string {
		return []string{"-d", "tcp://" + serveTCP(t, mpboardtest.Open(t, nil))}
	}},
	{"webrepl", func(t *testing.T) []string {
		term := mpboardtest.Open(t, nil)
		d := emutest.New(t, emulator.Options{Password: testPassword, Extended: true, Terminal: term, FS: term.FS()})
		d.ListenTCP(t)
		return []string{"-d", "ws://" + d.Addr, "--password", testPassword}
	}},
}

// serveTCP serves the byte stream rw to one TCP client at a time, as
// ser2net does, until the test ends: one pump sends the board's output to
// the client connected at the time (or drops it when there is none).
func serveTCP(t *testing.T, rw io.ReadWriteCloser) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		cur net.Conn
		wg  sync.WaitGroup
	)
	wg.Add(2)
	go func() { // board → the current client
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := rw.Read(buf)
			mu.Lock()
			if cur != nil && n > 0 {
				cur.Write(buf[:n])
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { // clients, one at a time → board
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			cur = conn
			mu.Unlock()
			io.Copy(rw, conn)
			mu.Lock()
			cur = nil
			mu.Unlock()
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		rw.Close()
		mu.Lock()
		if cur != nil {
			cur.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func runOK(t *testing.T, link []string, args ...string) string {
	t.Helper()
	r := run(t, "", append(args, link...)...)
	if r.err != nil {
		t.Fatalf("webrepl %s: %v (stderr %q)", strings.Join(args, " "), r.err, r.stderr)
	}
	return r.stdout
}

func TestCommandsOverEveryLink(t *testing.T) {
	for _, l := range boardLinks {
		t.Run(l.name, func(t *testing.T) {
			leakcheck.Check(t)
			link := l.start(t)
			local := t.TempDir()

			// put, ls, cat, stat, sha256sum, get: every byte value.
			data := make([]byte, 3000)
			for i := range data {
				data[i] = byte(i * 13)
			}
			src := filepath.Join(local, "data.bin")
			os.WriteFile(src, data, 0o644)
			runOK(t, link, "put", src, ":/data.bin")
			if out := runOK(t, link, "ls", ":/"); !strings.Contains(out, "data.bin\n") {
				t.Fatalf("ls after put: %q", out)
			}
			if out := runOK(t, link, "cat", ":/data.bin"); out != string(data) {
				t.Fatalf("cat gave %d bytes, want the %d put", len(out), len(data))
			}
			sum := sha256.Sum256(data)
			if out := runOK(t, link, "sha256sum", ":/data.bin"); !strings.HasPrefix(out, hex.EncodeToString(sum[:])) {
				t.Fatalf("sha256sum %q, want %x", out, sum)
			}
			if out := runOK(t, link, "stat", ":/data.bin", "--json"); !strings.Contains(out, `"size": 3000`) {
				t.Fatalf("stat --json: %q", out)
			}
			back := filepath.Join(local, "back.bin")
			runOK(t, link, "get", ":/data.bin", back)
			if got, _ := os.ReadFile(back); !bytes.Equal(got, data) {
				t.Fatalf("get gave %d bytes back, differing from what was put", len(got))
			}

			// mkdir -p, touch, tree, mv, rmdir, rm -r, ls --json.
			runOK(t, link, "mkdir", "-p", ":/a/b/c")
			runOK(t, link, "touch", ":/a/b/t.txt")
			runOK(t, link, "mv", ":/a/b/t.txt", ":/a/u.txt")
			if out := runOK(t, link, "tree", ":/a"); !strings.Contains(out, "c/") || !strings.Contains(out, "u.txt") || strings.Contains(out, "t.txt") {
				t.Fatalf("tree after mkdir/touch/mv: %q", out)
			}
			runOK(t, link, "rmdir", ":/a/b/c")
			runOK(t, link, "rm", "-r", ":/a")
			var entries []struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal([]byte(runOK(t, link, "ls", "--json", ":/")), &entries); err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Name == "a" {
					t.Fatal("rm -r left the directory")
				}
			}

			// cp -r both ways.
			tree := filepath.Join(local, "proj")
			os.MkdirAll(filepath.Join(tree, "lib"), 0o755)
			os.WriteFile(filepath.Join(tree, "main.py"), []byte("print('main')\n"), 0o644)
			os.WriteFile(filepath.Join(tree, "lib", "util.py"), []byte("X = 42\n"), 0o644)
			runOK(t, link, "cp", "-r", tree, ":/")
			out := filepath.Join(local, "out")
			runOK(t, link, "cp", "-r", ":/proj", out)
			if got, _ := os.ReadFile(filepath.Join(out, "lib", "util.py")); string(got) != "X = 42\n" {
				t.Fatalf("cp -r round trip: lib/util.py = %q", got)
			}

			// exec, eval, run, version, df.
			if out := runOK(t, link, "exec", "import sys\nsys.path.append('/proj/lib')\nimport util\nprint(util.X+1)"); strings.TrimSpace(out) != "43" {
				t.Fatalf("exec printed %q", out)
			}
			if out := runOK(t, link, "eval", "6*7"); strings.TrimSpace(out) != "42" {
				t.Fatalf("eval printed %q", out)
			}
			if out := runOK(t, link, "run", filepath.Join(tree, "main.py")); strings.TrimSpace(out) != "main" {
				t.Fatalf("run printed %q", out)
			}
			if out := runOK(t, link, "version"); strings.TrimSpace(out) != "1.27.0" {
				t.Fatalf("version printed %q", out)
			}
			if out := runOK(t, link, "df", "--json"); !strings.Contains(out, `"total"`) {
				t.Fatalf("df --json printed %q", out)
			}

			// A soft reset forgets variables and keeps files.
			runOK(t, link, "exec", "forgotten = 1")
			runOK(t, link, "reset")
			if r := run(t, "", append([]string{"eval", "forgotten"}, link...)...); r.err == nil || !strings.Contains(r.err.Error(), "NameError") {
				t.Fatalf("eval after reset: %v, want a NameError", r.err)
			}
			runOK(t, link, "cat", ":/proj/main.py")

			// A missing file: one clear line, exit status 1.
			r := run(t, "", append([]string{"cat", ":/missing.txt"}, link...)...)
			if ExitCode(r.err) != 1 || !strings.Contains(r.err.Error(), "missing.txt") || strings.Contains(r.err.Error(), "\n") {
				t.Fatalf("cat of a missing file: exit %d, %v", ExitCode(r.err), r.err)
			}
		})
	}
}

// TestEmulateBoard runs `webrepl emulate --board`: a full WebREPL device
// whose REPL and files are a real MicroPython's.
func TestEmulateBoard(t *testing.T) {
	leakcheck.Check(t)
	if err := mpboard.Available(); errors.Is(err, mpboard.ErrNoNode) {
		t.Skip(err)
	}
	stdout := newSyncBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"webrepl", "emulate", "--board", "--listen", "127.0.0.1:0", "--password", "pw"},
			IO{Stdin: strings.NewReader(""), Stdout: stdout, Stderr: newSyncBuffer()})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("emulate: %v", err)
		}
	})
	stdout.waitFor(t, "/ with a MicroPython board")
	addr := strings.TrimSuffix(strings.Fields(stdout.String())[4], "/")
	link := []string{"-d", addr, "--password", "pw"}
	src := filepath.Join(t.TempDir(), "x.py")
	os.WriteFile(src, []byte("y = 7\n"), 0o644)
	runOK(t, link, "put", src, ":/x.py")
	if out := runOK(t, link, "exec", "exec(open('/x.py').read())\nprint(y*6)"); strings.TrimSpace(out) != "42" {
		t.Fatalf("exec printed %q", out)
	}
}

// TestReplOverEveryLink pipes a line into repl over each link: the board's
// friendly REPL evaluates it.
func TestReplOverEveryLink(t *testing.T) {
	for _, l := range boardLinks {
		t.Run(l.name, func(t *testing.T) {
			leakcheck.Check(t)
			link := l.start(t)
			r := run(t, "6*7\r", append([]string{"repl"}, link...)...)
			if r.err != nil {
				t.Fatalf("repl: %v", r.err)
			}
			if !strings.Contains(r.stdout, "42") {
				t.Fatalf("repl output %q does not show the result", r.stdout)
			}
		})
	}
}

func TestPortsJSON(t *testing.T) {
	r := run(t, "", "ports", "--json")
	if r.err != nil {
		t.Fatalf("ports: %v", r.err)
	}
	var ports []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &ports); err != nil {
		t.Fatalf("ports --json printed %q: %v", r.stdout, err)
	}
}

// TestProgressOnTerminal: a transfer draws a progress bar on standard error
// when that is a terminal (and never when it is not: see the other tests,
// whose standard error is a buffer holding only the summary line).
func TestProgressOnTerminal(t *testing.T) {
	leakcheck.Check(t)
	b := mpboardtest.Start(t, nil)
	p, tty, _ := openTerminal(t)
	src := filepath.Join(t.TempDir(), "p.bin")
	os.WriteFile(src, bytes.Repeat([]byte("progress "), 4000), 0o644)
	err := Run(context.Background(), []string{"webrepl", "put", src, ":/p.bin", "-d", b.Path},
		IO{Stdin: strings.NewReader(""), Stdout: new(bytes.Buffer), Stderr: tty})
	if err != nil {
		t.Fatal(err)
	}
	var shown []byte
	buf := make([]byte, 4096)
	fds := []unix.PollFd{{Fd: int32(p.Master.Fd()), Events: unix.POLLIN}}
	for {
		if n, _ := unix.Poll(fds, 100); n <= 0 {
			break
		}
		k, err := p.Master.Read(buf)
		shown = append(shown, buf[:k]...)
		if err != nil {
			break
		}
	}
	if !bytes.Contains(shown, []byte("100%")) || !bytes.Contains(shown, []byte("p.bin")) {
		t.Fatalf("standard error showed %q, want a progress bar reaching 100%%", shown)
	}
}
