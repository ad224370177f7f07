package browser_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"webrepl/internal/browser"
	"webrepl/internal/leakcheck"
)

// withFIFO starts a fake browser whose shell opens a FIFO as its fd 3,
// then runs script, in which the processes that must die hold fd 3. It
// returns the reading end: it reaches EOF only when they are all dead.
func withFIFO(t *testing.T, script string) (*browser.Process, *bufio.Reader) {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "fake")
	writeExe(t, fake, "exec 3>'"+fifo+"'\n"+script+"\n")
	p, err := browser.Start(&browser.Options{Path: fake, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	// Opening blocks until the shell has opened the FIFO for writing.
	f, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return p, bufio.NewReader(f)
}

// groupChild starts a fake browser that starts a sleep in its process
// group, then runs tail.
func groupChild(t *testing.T, tail string) (*browser.Process, *bufio.Reader) {
	t.Helper()
	return withFIFO(t, "sleep 1000 >&3 &\n"+tail)
}

// waitEOF fails the test if the FIFO's writers (the sleep) are still alive
// after a generous bound.
func waitEOF(t *testing.T, f io.Reader) {
	t.Helper()
	eof := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(f)
		eof <- err
	}()
	select {
	case err := <-eof:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the browser's child is still running")
	}
}

// TestExitKillsGroup checks that when the main process exits on its own,
// what it started in its group is killed.
func TestExitKillsGroup(t *testing.T) {
	p, f := groupChild(t, "exit 0")
	<-p.Done()
	if err := p.Err(); err != nil {
		t.Errorf("Err() = %v; want nil for exit 0", err)
	}
	waitEOF(t, f)
}

// TestCloseKillsGroup checks that Close kills the main process and what it
// started.
func TestCloseKillsGroup(t *testing.T) {
	p, f := groupChild(t, "wait")
	select {
	case <-p.Done():
		t.Fatalf("the fake browser exited early: %v", p.Err())
	default:
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Close returned")
	}
	waitEOF(t, f)
}

// TestCloseKillsDetached checks that Close also kills a process that left
// the group (as Chromium's crash handler does) but names the run's
// directory on its command line.
func TestCloseKillsDetached(t *testing.T) {
	// The detached shell blocks opening a FIFO nobody writes to; its
	// command line names $HOME, which is under Options.Dir.
	p, f := withFIFO(t, `mkfifo "$HOME/never"
setsid sh -c 'echo ready >&3; read x < "$0"' "$HOME/never" &
wait`)
	line, err := f.ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("read %q, %v; want the detached shell's ready", line, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	waitEOF(t, f)
}

// TestChromiumLeavesNothing starts the real Chromium on a page, and checks
// that after Close no process of it is left.
func TestChromiumLeavesNothing(t *testing.T) {
	leakcheck.Check(t)
	if _, err := browser.Find(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	requested := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			once.Do(func() { close(requested) })
		}
		io.WriteString(w, "<!DOCTYPE html><p>hello</p>")
	}))
	defer srv.Close()

	dir := t.TempDir()
	p, err := browser.Start(&browser.Options{Dir: dir}, srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	select {
	case <-requested: // the browser, its network service and a renderer are up
	case <-p.Done():
		stderr, _ := p.Stderr()
		t.Fatalf("chromium exited: %v\n%s", p.Err(), stderr)
	case <-time.After(30 * time.Second):
		stderr, _ := p.Stderr()
		t.Fatalf("chromium did not request the page\n%s", stderr)
	}
	if n := len(processesWith(t, dir)); n < 3 {
		t.Errorf("found %d processes of this run while it was up; want the browser and its helpers (3 or more)", n)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	// The killed helpers are not our children, so there is nothing to
	// wait on: look until they are gone (SIGKILL takes effect within
	// milliseconds; the bound only keeps a failure from hanging).
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := processesWith(t, dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left after Close: %q", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesWith returns the command lines of the live processes whose
// command line mentions s. Zombies have an empty command line.
func processesWith(t *testing.T, s string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // not a process directory, or one that just went away
		}
		if bytes.Contains(b, []byte(s)) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}
