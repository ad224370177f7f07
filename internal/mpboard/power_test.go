//go:build linux

package mpboard_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"webrepl/internal/leakcheck"
	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/transport"
)

// openSerial opens path with the project's serial transport, as the
// bridge opens a board, and returns it as a line. A watchdog closes the
// port if the test hangs on it.
func openSerial(t *testing.T, path string) (*line, io.ReadWriteCloser) {
	t.Helper()
	s, err := transport.OpenStream(context.Background(), "serial://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(30*time.Second, func() { s.Close() })
	t.Cleanup(func() {
		watchdog.Stop()
		s.Close()
	})
	return &line{t: t, rw: s}, s
}

// typeLine types code at the friendly REPL and returns the output up to
// the next prompt.
func (l *line) typeLine(code string) string {
	l.t.Helper()
	l.send(code + "\r")
	return l.until(">>> ")
}

// readToEnd reads r until it fails and sends the error.
func readToEnd(r io.Reader) <-chan error {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1024)
		for {
			if _, err := r.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

func waitErr(t *testing.T, done <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: still reading 10 s after Unplug", what)
		return nil
	}
}

// checkLink checks that link points to the board's current pseudo-terminal.
func checkLink(t *testing.T, b *mpboard.Board, link string) {
	t.Helper()
	dev := b.Device()
	if !strings.HasPrefix(dev, "/dev/pts/") {
		t.Fatalf("Device() = %q, want a /dev/pts/N", dev)
	}
	if got, err := os.Readlink(link); err != nil || got != dev {
		t.Fatalf("link %s -> %q, %v; want -> %q", link, got, err, dev)
	}
}

// TestUnplugReplug unplugs a board that a host has open through a link,
// checks what the host sees, plugs it back, and checks that its files
// survived while its Python state did not.
func TestUnplugReplug(t *testing.T) {
	leakcheck.Check(t)
	link := filepath.Join(t.TempDir(), "ttyBOARD")
	b := mpboardtest.Start(t, &mpboard.Options{Link: link})
	if b.Path != link {
		t.Fatalf("Path = %q, want the link %q", b.Path, link)
	}
	checkLink(t, b, link)
	oldFS := b.FS()

	l, s := openSerial(t, b.Path)
	if got := l.until(">>> "); got != "\r\n"+banner {
		t.Errorf("start-up output %q, want %q", got, "\r\n"+banner)
	}
	l.typeLine("open('keep.txt','w').write('hi')")
	l.typeLine("import os; os.mkdir('lib'); os.mkdir('lib/empty')")
	l.typeLine("open('lib/m.py','w').write('x = 1')")
	l.typeLine(`open('boot.py','w').write('print("booted")\nbg = 7\n')`)
	l.typeLine("g = 42")
	if got := l.typeLine("print(g)"); !strings.Contains(got, "42") {
		t.Fatalf("print(g) answered %q", got)
	}

	// The host keeps reading, as the bridge does, when the cable is pulled.
	hostRead := readToEnd(s)
	pid := b.Pid()
	if err := b.Unplug(); err != nil {
		t.Fatal(err)
	}
	err := waitErr(t, hostRead, "the host")
	if !errors.Is(err, net.ErrClosed) {
		t.Errorf("host read after Unplug: %v, want a disconnect (matching net.ErrClosed)", err)
	}
	t.Logf("host read after Unplug: %v", err)
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("node (pid %d) after Unplug: %v, want no such process", pid, err)
	}
	if _, err := transport.OpenSerial(link, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open %s after Unplug: %v, want fs.ErrNotExist", link, err)
	}
	if _, err := transport.OpenStream(context.Background(), "serial://"+link, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenStream %s after Unplug: %v, want fs.ErrNotExist", link, err)
	}
	if got := b.Device(); got != "" {
		t.Errorf("Device() while unplugged = %q, want \"\"", got)
	}
	if _, err := b.FS().Stat("/keep.txt"); !errors.Is(err, mpboard.ErrChannelClosed) {
		t.Errorf("FS().Stat while unplugged: %v, want ErrChannelClosed", err)
	}
	s.Close()

	if err := b.Replug(); err != nil {
		t.Fatal(err)
	}
	if b.Path != link {
		t.Errorf("Path after Replug = %q, want %q", b.Path, link)
	}
	checkLink(t, b, link)
	if b.FS() == oldFS {
		t.Errorf("FS() after Replug is the old board's")
	}
	if _, err := oldFS.Stat("/keep.txt"); !errors.Is(err, mpboard.ErrChannelClosed) {
		t.Errorf("old FS after Replug: %v, want ErrChannelClosed", err)
	}

	l, _ = openSerial(t, b.Path)
	// /boot.py came back and ran at power-on, before the banner.
	if got, want := l.until(">>> "), "booted\n\r\n"+banner; lf(got) != lf(want) {
		t.Errorf("power-on output %q, want %q", got, want)
	}
	if got := l.typeLine("print(open('keep.txt').read())"); !strings.Contains(got, "hi\n") {
		t.Errorf("keep.txt after Replug: %q", got)
	}
	if got := l.typeLine("print(open('lib/m.py').read(), os.listdir('lib'))"); !strings.Contains(got, "NameError") {
		t.Errorf("the os import survived the power cycle: %q", got)
	}
	if got := l.typeLine("import os; print(open('lib/m.py').read(), sorted(os.listdir('lib')))"); !strings.Contains(got, "x = 1 ['empty', 'm.py']") {
		t.Errorf("lib after Replug: %q", got)
	}
	if got := l.typeLine("g"); !strings.Contains(got, "NameError") {
		t.Errorf("a global survived the power cycle: %q", got)
	}
	if got := l.typeLine("print(bg)"); !strings.Contains(got, "7") {
		t.Errorf("boot.py's global after Replug: %q", got)
	}

	// The new FS reaches the restored files.
	if fi, err := b.FS().Stat("/keep.txt"); err != nil || fi.Size() != 2 {
		t.Errorf("FS().Stat(/keep.txt) after Replug: %v, %v", fi, err)
	}
	if fi, err := b.FS().Stat("/lib/empty"); err != nil || !fi.IsDir() {
		t.Errorf("FS().Stat(/lib/empty) after Replug: %v, %v", fi, err)
	}
	put(t, b.FS(), "/lib/new.txt", []byte("via FS"))
	if got := l.typeLine("print(open('/lib/new.txt').read())"); !strings.Contains(got, "via FS") {
		t.Errorf("a file put through the new FS: %q", got)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link after Close: %v, want it gone", err)
	}
}

// TestUnplugHangsUp checks what a plain reader of the pseudo-terminal's
// slave side gets at Unplug: end of file on read, EIO on write, and the
// device node gone.
func TestUnplugHangsUp(t *testing.T) {
	b, l := start(t, nil)
	l.until(">>> ")
	dev := b.Path
	if b.Device() != dev {
		t.Errorf("Device() = %q, want Path %q without a link", b.Device(), dev)
	}
	// Output the host has not read yet is lost.
	l.send("print('unread')\r")
	hostRead := readToEnd(l.f)
	if err := b.Unplug(); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, hostRead, "the host"); err != io.EOF {
		t.Errorf("read of the slave after Unplug: %v, want io.EOF", err)
	}
	if _, err := l.f.Write([]byte("1\r")); !errors.Is(err, syscall.EIO) {
		t.Errorf("write to the slave after Unplug: %v, want EIO", err)
	}
	if _, err := os.Stat(dev); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat %s after Unplug: %v, want it gone", dev, err)
	}
	if err := b.Replug(); err != nil {
		t.Fatal(err)
	}
	// Without a link, the board comes back on a pseudo-terminal of its own.
	l = openPath(t, b.Device())
	if got := l.until(">>> "); got != "\r\n"+banner {
		t.Errorf("power-on output %q", got)
	}
}

// TestPowerMisuse: Unplug and Replug in the wrong state, and Close while
// unplugged.
func TestPowerMisuse(t *testing.T) {
	leakcheck.Check(t)
	b := mpboardtest.StartLinked(t, nil)
	link := b.Path
	if err := b.Replug(); !errors.Is(err, mpboard.ErrPlugged) {
		t.Errorf("Replug while plugged in: %v, want ErrPlugged", err)
	}
	checkLink(t, b, link)
	if err := b.Unplug(); err != nil {
		t.Fatal(err)
	}
	flash := b.FlashDir()
	if flash == "" {
		t.Fatal("no saved files after Unplug")
	}
	if err := b.Unplug(); !errors.Is(err, mpboard.ErrUnplugged) {
		t.Errorf("Unplug while unplugged: %v, want ErrUnplugged", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close while unplugged: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(flash); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("saved files after Close: %v, want them gone", err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link after Close: %v, want it gone", err)
	}
	if err := b.Replug(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Replug after Close: %v, want os.ErrClosed", err)
	}
	if err := b.Unplug(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Unplug after Close: %v, want os.ErrClosed", err)
	}
	if _, err := b.FS().Stat("/"); !errors.Is(err, mpboard.ErrChannelClosed) {
		t.Errorf("FS after Close: %v, want ErrChannelClosed", err)
	}
}

// TestLinkExisting: Start replaces a symbolic link at Link and refuses to
// replace anything else.
func TestLinkExisting(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "ttyBOARD")
	if err := os.Symlink("/dev/pts/does-not-exist", link); err != nil {
		t.Fatal(err)
	}
	b := mpboardtest.Start(t, &mpboard.Options{Link: link})
	checkLink(t, b, link)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("left in the link's directory: %v, %v", entries, err)
	}

	file := filepath.Join(dir, "ttyFILE")
	if err := os.WriteFile(file, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := mpboard.Start(&mpboard.Options{Link: file, Logf: t.Logf})
	if err == nil {
		b.Close()
		t.Fatal("Start over a regular file succeeded")
	}
	if !errors.Is(err, fs.ErrExist) {
		t.Errorf("Start over a regular file: %v, want fs.ErrExist", err)
	}
	if got, err := os.ReadFile(file); err != nil || string(got) != "mine" {
		t.Errorf("the file after Start: %q, %v", got, err)
	}
}

// TestPowerConcurrent races Unplug, Replug, FS, Device and Close.
func TestPowerConcurrent(t *testing.T) {
	leakcheck.Check(t)
	b := mpboardtest.StartLinked(t, nil)
	pid := b.Pid()
	allowed := func(err error) bool {
		return err == nil || errors.Is(err, mpboard.ErrPlugged) || errors.Is(err, mpboard.ErrUnplugged) || errors.Is(err, os.ErrClosed)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	unplugged := make(chan struct{})
	var once sync.Once
	for range 2 {
		wg.Go(func() {
			for range 3 {
				err := b.Unplug()
				if err == nil {
					once.Do(func() { close(unplugged) })
				}
				errs <- err
				errs <- b.Replug()
			}
		})
	}
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			b.FS().Stat("/")
			b.Device()
		}
	})
	<-unplugged
	closed := make(chan error, 2)
	for range 2 {
		go func() { closed <- b.Close() }()
	}
	for range 2 {
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !allowed(err) {
			t.Errorf("Unplug/Replug: %v", err)
		}
	}
	if err := b.Replug(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Replug after Close: %v, want os.ErrClosed", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("first node (pid %d) after Close: %v", pid, err)
	}
	if _, err := os.Lstat(b.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link after Close: %v, want it gone", err)
	}
}

// TestUnplugBusy unplugs a board whose program computes without printing:
// it cannot hand over its files, so Unplug gives up waiting, unplugs it
// all the same and says the files are lost; the board comes back empty.
func TestUnplugBusy(t *testing.T) {
	leakcheck.Check(t)
	b := mpboardtest.StartLinked(t, nil)
	b.SetSaveTimeout(300 * time.Millisecond)
	l, _ := openSerial(t, b.Path)
	l.until(">>> ")
	l.typeLine("open('keep.txt','w').write('hi')")
	// The harness serves the file channel just before each piece of a
	// program's output, and sends output at once when it comes more than
	// 10 ms after the last: after 50 ms of computing, "g" goes out at once,
	// and once the host has it the board serves nothing more.
	l.send(`exec("import time\nt = time.ticks_ms()\nwhile time.ticks_diff(time.ticks_ms(), t) < 50: pass\nprint('g', end='')\nwhile True: pass")` + "\r")
	l.until("pass\")\r\ng")
	hostRead := readToEnd(l.rw)
	err := b.Unplug()
	if err == nil || !strings.Contains(err.Error(), "files are lost") {
		t.Fatalf("Unplug of a busy board: %v, want the files lost", err)
	}
	t.Logf("Unplug of a busy board: %v", err)
	if err := waitErr(t, hostRead, "the host"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("host read after Unplug: %v, want a disconnect", err)
	}
	if b.Device() != "" {
		t.Errorf("Device() = %q after a failed save, want the board unplugged", b.Device())
	}
	if err := b.Replug(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.FS().Stat("/keep.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("keep.txt after Replug: %v, want it gone with the lost files", err)
	}
}
