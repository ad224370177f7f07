package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"webrepl/bridge"
	"webrepl/internal/leakcheck"
	"webrepl/internal/pty"
	"webrepl/protocol"
	"webrepl/transport"
)

// fakeBoard is the device end of a pseudo-terminal that the bridge opens
// with the serial transport: the test sees what the bridge sends and
// writes what the "board" prints.
type fakeBoard struct {
	tb   testing.TB
	pty  *pty.Pty
	mu   sync.Mutex
	got  []byte
	wake chan struct{}
}

func newFakeBoard(tb testing.TB) (*fakeBoard, bridge.BoardConfig) {
	tb.Helper()
	p, err := pty.Open()
	if err != nil {
		tb.Skipf("no pseudo-terminals: %v", err)
	}
	f := &fakeBoard{tb: tb, pty: p, wake: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := p.Master.Read(buf)
			if n > 0 {
				f.mu.Lock()
				f.got = append(f.got, buf[:n]...)
				f.mu.Unlock()
				select {
				case f.wake <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	tb.Cleanup(func() {
		p.Close()
		<-done
	})
	return f, bridge.BoardConfig{Port: p.Name}
}

// received returns what the bridge has sent to the board so far.
func (f *fakeBoard) received() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.got)
}

// waitFor waits until the board received at least n bytes.
func (f *fakeBoard) waitFor(n int, within time.Duration) []byte {
	f.tb.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		if got := f.received(); len(got) >= n {
			return got
		}
		select {
		case <-f.wake:
		case <-deadline.C:
			return f.received()
		}
	}
}

// print writes board output.
func (f *fakeBoard) print(s string) {
	f.tb.Helper()
	if _, err := f.pty.Master.Write([]byte(s)); err != nil {
		f.tb.Fatal(err)
	}
}

func TestNothingIsSentUntilAsked(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := newFakeBoard(t)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	c := login(t, br.URL, testPassword)
	observer := login(t, br.URL+"?observe", testPassword)
	expect(t, observer, "read-only")
	board.print("program output\r\n")
	expect(t, observer, "program output")
	expect(t, c, "program output")
	// Starting, a login and output sent nothing to the board: a running
	// program was not disturbed.
	if got := board.waitFor(1, 200*time.Millisecond); len(got) != 0 {
		t.Fatalf("the bridge sent %q to the board before anyone typed", got)
	}
	// The observer's keystrokes are dropped (it had its notice).
	observer.Write([]byte("x"))
	observer.Write([]byte("y"))
	c.Write([]byte("k"))
	if got := board.waitFor(1, 10*time.Second); string(got) != "k" {
		t.Fatalf("the board got %q, want only the controller's %q", got, "k")
	}
}

func TestPasteIsPacedTypingIsNot(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := newFakeBoard(t)
	// A pause so long that only the first chunk of a paste can arrive
	// while the test runs.
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{PasteChunk: 64, PasteDelay: time.Hour})
	c := login(t, br.URL, testPassword)
	c.Write([]byte("a"))
	if got := board.waitFor(1, 10*time.Second); string(got) != "a" {
		t.Fatalf("a keystroke: the board got %q", got)
	}
	c.Write([]byte("b"))
	if got := board.waitFor(2, 10*time.Second); string(got) != "ab" {
		t.Fatalf("the next keystroke: the board got %q", got)
	}
	paste := strings.Repeat("0123456789abcdef", 20) // 320 bytes
	c.Write([]byte(paste))
	got := board.waitFor(2+64, 10*time.Second)
	if string(got) != "ab"+paste[:64] {
		t.Fatalf("after the paste the board got %q, want the first 64-byte chunk", got)
	}
	if got := board.waitFor(2+65, 300*time.Millisecond); len(got) != 2+64 {
		t.Fatalf("the paste was not paced: %d bytes arrived at once", len(got)-2)
	}
}

func TestOutputIsValidUTF8(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := newFakeBoard(t)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn := dialRaw(t, br.URL, nil)
	readText := func(want string) string {
		var all []byte
		for !bytes.Contains(all, []byte(want)) {
			binary, p, err := conn.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("waiting for %q: %v (got %q)", want, err, all)
			}
			if binary || !utf8.Valid(p) {
				t.Fatalf("frame binary=%v valid=%v: % x", binary, utf8.Valid(p), p)
			}
			all = append(all, p...)
		}
		return string(all)
	}
	readText("Password: ")
	conn.WriteMessage(ctx, false, []byte(testPassword+"\r"))
	readText(">>> ")
	// "é" split across two writes, bytes that are never UTF-8, and "€".
	// The client receives "caf" before the rest is written: the bridge
	// read the split character's first byte on its own and held it back.
	board.print("caf\xc3")
	got := readText("caf")
	board.print("\xa9 \xff\xfe \xe2\x82\xac end")
	got += readText("end")
	if want := "café \uFFFD\uFFFD € end"; !strings.Contains(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestSlowClientsDoNotSlowTheBoard(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := newFakeBoard(t)
	const buffer = 1 << 20
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{ClientBuffer: buffer})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The controller reads frames itself (protocol.Client would drop the
	// oldest output past its own buffer when the test reads slowly).
	c := dialRaw(t, br.URL, nil)
	c.WriteMessage(ctx, false, []byte(testPassword+"\r"))
	waitClients(t, br, 1)

	// An observer that logs in and then never reads again, and one that
	// reads a frame every 20 ms: at most 3.2 MB/s, as frames hold at most
	// 64 KiB.
	stalled := dialRaw(t, br.URL+"?observe", nil)
	stalled.WriteMessage(ctx, false, []byte(testPassword+"\r"))
	slow := dialRaw(t, br.URL+"?observe", nil)
	slow.WriteMessage(ctx, false, []byte(testPassword+"\r"))
	waitClients(t, br, 3)
	slowGot := make(chan int, 1)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			<-tick.C
			_, p, err := slow.ReadMessage(ctx)
			if err != nil {
				slowGot <- n
				return
			}
			n += bytes.Count(p, []byte("x"))
		}
	}()

	// 32 MiB of output, far more than a client's buffer plus what the
	// sockets hold, written as fast as the controller takes it: the board
	// stays at most 8 chunks ahead of what the controller has received.
	// Were the bridge to wait for the slow observer, the board would go at
	// its pace and the slow observer would get everything.
	const chunks = 512
	chunk := strings.Repeat("x", 64<<10-2) + "\r\n"
	credits := make(chan struct{}, chunks)
	for range 8 {
		credits <- struct{}{}
	}
	go func() {
		for range chunks {
			select {
			case <-credits:
			case <-ctx.Done():
				return
			}
			if _, err := board.pty.Master.Write([]byte(chunk)); err != nil {
				return
			}
		}
		board.pty.Master.Write([]byte("THE END"))
	}()
	var n, credited int
	var tail []byte
	for !bytes.Contains(tail, []byte("THE END")) {
		_, p, err := c.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("the controller stopped receiving after %d bytes: %v", n, err)
		}
		n += bytes.Count(p, []byte("x"))
		for ; credited < n/(len(chunk)-2); credited++ {
			credits <- struct{}{}
		}
		tail = append(tail[max(0, len(tail)-8):], p...)
	}
	want := chunks * (len(chunk) - 2)
	if n != want {
		t.Fatalf("the controller got %d x's, want %d", n, want)
	}
	waitClients(t, br, 1) // both observers were disconnected
	if got := <-slowGot; got >= want {
		t.Fatalf("the slow observer got all %d bytes: the board went at its pace", got)
	}
}

// waitClients waits until the board has n logged-in clients.
func waitClients(tb testing.TB, br *testBridge, n int) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := healthz(tb, br)
		if st.Boards[0].Clients == n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d clients, want %d", st.Boards[0].Clients, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestControllerAndObservers(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ctrl := login(t, br.URL, testPassword)
	second := login(t, br.URL, testPassword) // wants control: becomes an observer
	expect(t, second, "you are an observer")
	watcher := login(t, br.URL+"?observe", testPassword)
	expect(t, watcher, "read-only")

	typeLine(t, ctrl, "print('seen by all', 2**10)")
	for _, c := range []*protocol.Client{ctrl, second, watcher} {
		expect(t, c, "seen by all 1024")
	}
	// An observer cannot write files; its session stays.
	err := second.Put(ctx, "x.txt", strings.NewReader("x"), 1, nil)
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("put by an observer: %v, want a permission error", err)
	}
	// The controller leaves: the client that wanted control gets it.
	ctrl.Close()
	expect(t, second, "you now control the board")
	typeLine(t, second, "print('now', 'second')")
	expect(t, watcher, "now second")
	if err := second.Put(ctx, "x.txt", strings.NewReader("x"), 1, nil); err != nil {
		t.Fatalf("put by the new controller: %v", err)
	}
}

func TestSecondControllerPolicies(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		policy bridge.Policy
		notice string
	}{
		{bridge.Refuse, "try again later"},
		{bridge.TakeOver, "took control"},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			board, cfg := newFakeBoard(t)
			br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{SecondController: tc.policy})
			first := login(t, br.URL, testPassword)
			second := login(t, br.URL, testPassword)
			switch tc.policy {
			case bridge.Refuse:
				expect(t, second, tc.notice)
				select {
				case <-second.Done():
				case <-time.After(20 * time.Second):
					t.Fatal("the refused session stayed open")
				}
				first.Write([]byte("1"))
				if got := board.waitFor(1, 10*time.Second); string(got) != "1" {
					t.Fatalf("the first controller's input: %q", got)
				}
			case bridge.TakeOver:
				expect(t, first, tc.notice)
				first.Write([]byte("1"))
				second.Write([]byte("2"))
				if got := board.waitFor(1, 10*time.Second); string(got) != "2" {
					t.Fatalf("the board got %q, want only the new controller's input", got)
				}
			}
		})
	}
}

func TestMaxClients(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := newFakeBoard(t)
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{MaxClients: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Connections that never log in do not count: they cannot keep the
	// board's users out.
	for range 3 {
		silent := dialRaw(t, br.URL, nil)
		if _, p, err := silent.ReadMessage(ctx); err != nil || string(p) != "Password: " {
			t.Fatalf("a silent connection got %q %v, want the prompt", p, err)
		}
	}
	login(t, br.URL, testPassword)
	login(t, br.URL, testPassword)
	third := dialRaw(t, br.URL, nil)
	third.WriteMessage(ctx, false, []byte(testPassword+"\r"))
	got, _ := drain(ctx, third)
	if !strings.Contains(string(got), "too many clients") {
		t.Fatalf("the third client got %q", got)
	}
	waitClients(t, br, 2)
}

func TestSessionsWaitingForLoginAreBounded(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := newFakeBoard(t)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var silent []*transport.Conn
	for range 16 {
		c := dialRaw(t, br.URL, nil)
		if _, p, err := c.ReadMessage(ctx); err != nil || string(p) != "Password: " {
			t.Fatalf("silent connection %d got %q %v, want the prompt", len(silent), p, err)
		}
		silent = append(silent, c)
	}
	got, _ := drain(ctx, dialRaw(t, br.URL, nil))
	if !strings.Contains(string(got), "too many sessions from this address waiting to log in") {
		t.Fatalf("the 17th session waiting to log in got %q", got)
	}
	// One of them logs in: a place is free again.
	silent[0].WriteMessage(ctx, false, []byte(testPassword+"\r"))
	waitClients(t, br, 1)
	login(t, br.URL, testPassword)
	waitClients(t, br, 2)
}

func TestWrongPasswordsAreSlowedDown(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := newFakeBoard(t)
	var logs syncBuffer
	const delay = 300 * time.Millisecond
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{
		LoginDelay: delay,
		Logger:     newLogger(&logs),
	})
	attempt := func(pw string) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := transport.Dial(ctx, br.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c, err := protocol.Login(ctx, conn, pw, nil)
		if err == nil {
			c.Close()
		}
		return time.Since(start), err
	}
	const wrong = "guess-number-one"
	for i, min := range []time.Duration{0, delay, 2 * delay} {
		took, err := attempt(wrong)
		if !errors.Is(err, protocol.ErrAccessDenied) {
			t.Fatalf("attempt %d: %v, want access denied", i+1, err)
		}
		if took < min*9/10 {
			t.Fatalf("attempt %d was answered after %v, want at least %v", i+1, took, min)
		}
	}
	took, err := attempt(testPassword)
	if err != nil {
		t.Fatalf("the right password after the delay: %v", err)
	}
	if took < 4*delay*9/10 {
		t.Fatalf("the next attempt came after %v, want the doubled delay %v", took, 4*delay)
	}
	if strings.Contains(logs.String(), wrong) {
		t.Fatal("a typed password reached the log")
	}
	if !strings.Contains(logs.String(), "login failed") {
		t.Fatalf("failed logins were not logged: %s", logs.String())
	}
}

func TestControlPassesToAClientThatWaits(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := newFakeBoard(t)
	// A long wait: whichever comes first, the second login or the first
	// client leaving, the second client must end up in control.
	var logs syncBuffer
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{ControlWait: time.Minute, Logger: newLogger(&logs)})
	first := login(t, br.URL, testPassword)
	logged := make(chan *protocol.Client, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := transport.Dial(ctx, br.URL, nil)
		if err != nil {
			logged <- nil
			return
		}
		c, err := protocol.Login(ctx, conn, testPassword, nil)
		if err != nil {
			c = nil
		}
		logged <- c
	}()
	// The first client leaves once the second is waiting for control.
	for !strings.Contains(logs.String(), "waiting for the controller to leave") {
		time.Sleep(5 * time.Millisecond)
	}
	first.Close()
	second := <-logged
	if second == nil {
		t.Fatal("the second client could not log in")
	}
	defer second.Close()
	second.Write([]byte("2"))
	if got := board.waitFor(1, 10*time.Second); string(got) != "2" {
		t.Fatalf("the board got %q from the client that waited for control", got)
	}
	// It never was an observer, not even for a moment.
	board.print("ack\r\n")
	if out := expect(t, second, "ack"); strings.Contains(out, "observer") {
		t.Fatalf("the client that waited was made an observer first: %q", out)
	}
}

func TestVersionWithoutInterrupting(t *testing.T) {
	leakcheck.Check(t)
	board, cfg := newFakeBoard(t)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := login(t, br.URL, testPassword)
	// A program runs (its output does not end at a prompt), and the
	// bridge has seen no banner: GET_VER says "unknown" rather than
	// interrupt the program to ask.
	board.print("counting 1\r\ncounting 2\r\n")
	expect(t, c, "counting 2")
	if v, err := c.Version(ctx); err != nil || v != (protocol.Version{}) {
		t.Fatalf("GET_VER while a program runs: %v %v, want 0.0.0", v, err)
	}
	// A banner in the output tells the version; still nothing is sent.
	board.print("MPY: soft reboot\r\nMicroPython v1.23.4 on 2024-06-01; Generic board\r\nType \"help()\" for more information.\r\n>>> ")
	expect(t, c, ">>> ")
	if v, err := c.Version(ctx); err != nil || v != (protocol.Version{Major: 1, Minor: 23, Micro: 4}) {
		t.Fatalf("GET_VER after a banner: %v %v, want 1.23.4", v, err)
	}
	if got := board.received(); len(got) != 0 {
		t.Fatalf("the bridge sent %q to the board", got)
	}
}
