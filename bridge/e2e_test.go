package bridge_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"webrepl/bridge"
	"webrepl/internal/cli"
	"webrepl/internal/leakcheck"
	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/protocol"
)

// TestTerminalAndFiles uses the terminal and the file protocol in one
// session. The file operations hide the raw REPL from the terminal
// clients: between a marker printed before them and one printed after,
// the controller and an observer get exactly one fresh prompt per
// operation.
func TestTerminalAndFiles(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	c := login(t, br.URL, testPassword)
	watcher := login(t, br.URL+"?observe", testPassword)
	term := newTermReader(t, "controller", c)
	obs := newTermReader(t, "observer", watcher)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	typeLine(t, c, "print(6*7)")
	term.until("42")

	before := newMarker("before")
	typeMarker(t, c, before)
	term.drain(before)
	obs.drain(before)
	data := make([]byte, 5000)
	rand.Read(data)
	if err := c.Put(ctx, "blob.bin", bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatalf("put: %v", err)
	}
	var got bytes.Buffer
	if _, err := c.Get(ctx, "blob.bin", &got, nil); err != nil {
		t.Fatalf("get: %v", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("get returned %d bytes, want the %d put", got.Len(), len(data))
	}
	after := newMarker("after")
	typeMarker(t, c, after)
	for _, r := range []*termReader{term, obs} {
		if out := r.sinceDrain(after); out != freshPrompt+freshPrompt {
			t.Errorf("%s: during a put and a get the terminal got %q, want a fresh prompt %q for each, and nothing of the raw REPL", r.name, out, freshPrompt)
		}
	}

	v, err := c.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != (protocol.Version{Major: 1, Minor: 27, Micro: 0}) {
		t.Errorf("version %v, want the board's 1.27.0", v)
	}

	// A missing file: a non-zero status, and the session goes on.
	_, err = c.Get(ctx, "no-such-file", &got, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("get of a missing file: %v, want ErrNotExist", err)
	}
	typeLine(t, c, "print(len(open('blob.bin','rb').read()))")
	term.until("5000")
}

func TestSoftResetKeepsSessions(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	c := login(t, br.URL, testPassword)
	watcher := login(t, br.URL+"?observe", testPassword)
	typeLine(t, c, "before = 1")
	c.Write([]byte("\x04")) // Ctrl-D at the prompt: a soft reset
	expect(t, c, "soft reboot")
	expect(t, watcher, "soft reboot")
	typeLine(t, c, "print('after', 'before' in globals())")
	expect(t, c, "after False")
	expect(t, watcher, "after False")
}

func TestCommandsThroughTheBridge(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	dir := t.TempDir()
	local := filepath.Join(dir, "main.py")
	if err := os.WriteFile(local, []byte("print('hello from main')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		all := append([]string{"webrepl", "-d", br.URL, "-p", testPassword}, args...)
		if err := cli.Run(ctx, all, cli.IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}); err != nil {
			t.Fatalf("%v: %v (%s)", args, err, errOut.String())
		}
		return out.String()
	}
	run("put", local, ":main.py")
	run("mkdir", "lib")
	if got := run("ls"); !contains(got, "main.py", "lib/") {
		t.Fatalf("ls: %q", got)
	}
	if got := run("cat", "main.py"); got != "print('hello from main')\n" {
		t.Fatalf("cat: %q", got)
	}
	if got := run("exec", "exec(open('main.py').read())"); !strings.Contains(got, "hello from main") {
		t.Fatalf("exec: %q", got)
	}
	if got := run("eval", "6*7"); strings.TrimSpace(got) != "42" {
		t.Fatalf("eval: %q", got)
	}
	if got := run("version"); !strings.Contains(got, "1.27.0") {
		t.Fatalf("version: %q", got)
	}
	run("get", ":main.py", filepath.Join(dir, "back.py"))
	back, err := os.ReadFile(filepath.Join(dir, "back.py"))
	if err != nil || string(back) != "print('hello from main')\n" {
		t.Fatalf("get: %q %v", back, err)
	}
	run("rm", "main.py")
	if got := run("ls"); strings.Contains(got, "main.py") {
		t.Fatalf("ls after rm: %q", got)
	}
}

func TestUnplugAndReplugKeepSessions(t *testing.T) {
	leakcheck.Check(t)
	board := mpboardtest.StartLinked(t, nil)
	br := startBridge(t, []bridge.BoardConfig{{Port: board.Path}}, &bridge.Options{ReconnectInterval: 50 * time.Millisecond})
	c := login(t, br.URL, testPassword)
	watcher := login(t, br.URL+"?observe", testPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.Put(ctx, "kept.txt", strings.NewReader("survives"), 8, nil); err != nil {
		t.Fatal(err)
	}
	typeLine(t, c, "x = 'before'")

	if err := board.Unplug(); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "the board is gone")
	expect(t, watcher, "the board is gone")
	if h := healthz(t, br); h.Status == "ok" || h.Boards[0].Connected {
		t.Fatalf("healthz while unplugged: %+v", h)
	}
	// A file operation while the board is gone fails; the session stays.
	var buf bytes.Buffer
	if _, err := c.Get(ctx, "kept.txt", &buf, nil); err == nil {
		t.Fatal("a get while the board is unplugged succeeded")
	}

	if err := board.Replug(); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "the board is back")
	expect(t, watcher, "the board is back")
	typeLine(t, c, "print(open('kept.txt').read(), 'x' in globals())")
	expect(t, c, "survives False")
	expect(t, watcher, "survives False")
	buf.Reset()
	if _, err := c.Get(ctx, "kept.txt", &buf, nil); err != nil || buf.String() != "survives" {
		t.Fatalf("get after the re-plug: %q %v", buf.String(), err)
	}
	if h := healthz(t, br); h.Status != "ok" || h.Boards[0].Clients != 2 {
		t.Fatalf("healthz after the re-plug: %+v", h)
	}
}
