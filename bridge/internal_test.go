package bridge

import (
	"bytes"
	"testing"
	"time"

	"webrepl/protocol"
)

func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.27.0", "1.27.0\r\n", "255.255.255", "1.2", "a.b.c", "1.2.3.4", "256.0.0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseVersion(s)
		if err != nil {
			if v != (protocol.Version{}) {
				t.Fatalf("%q: error %v with version %v", s, err, v)
			}
			return
		}
		if got, err := parseVersion(v.String()); err != nil || got != v {
			t.Fatalf("%q gave %v, which does not round-trip: %v %v", s, v, got, err)
		}
	})
}

// FuzzTrackMode feeds output in two pieces, split anywhere: the mode must
// be what the last marker in the whole output says.
func FuzzTrackMode(f *testing.F) {
	f.Add([]byte("\r\n>>> \r\nraw REPL; CTRL-B to exit\r\n>"), 10)
	f.Add([]byte("raw REPL; CTRL-B to exit\r\n>OK\x04\x04>\r\nMicroPython\r\n>>> "), 30)
	f.Add([]byte("nothing"), 3)
	f.Fuzz(func(t *testing.T, out []byte, cut int) {
		if cut < 0 || cut > len(out) {
			return
		}
		var l line
		l.trackMode(out[:cut])
		l.trackMode(out[cut:])
		r, p := bytes.LastIndex(out, rawBanner), bytes.LastIndex(out, friendlyPrompt)
		if r != p && l.rawMode != (r > p) {
			t.Fatalf("%q split at %d: raw %v, want %v", out, cut, l.rawMode, r > p)
		}
		if len(l.recent) > recentSize {
			t.Fatalf("the kept output grew to %d bytes", len(l.recent))
		}
		if want := bytes.HasSuffix(out, promptEnd); l.atPrompt != want && len(out[cut:]) > 0 {
			t.Fatalf("%q split at %d: at the prompt %v, want %v", out, cut, l.atPrompt, want)
		}
	})
}

func TestLoginDelayDoublesUpToACap(t *testing.T) {
	th := newThrottle(500 * time.Millisecond)
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}
	for i, w := range want {
		if got := th.delay(i + 1); got != w {
			t.Errorf("delay after %d failures: %v, want %v", i+1, got, w)
		}
	}
	if got := th.delay(100); got != maxLoginDelay {
		t.Errorf("delay after 100 failures: %v, want the cap %v", got, maxLoginDelay)
	}
}

func TestOutQueueBounds(t *testing.T) {
	q := newOutQueue(100 + 2*chunkOverhead)
	if !q.push(make([]byte, 60)) {
		t.Fatal("the first 60 bytes were refused")
	}
	if q.push(make([]byte, 41)) {
		t.Fatal("101 bytes in two chunks were taken, over the limit")
	}
	if !q.push(make([]byte, 40)) {
		t.Fatal("100 bytes in two chunks, the limit, were refused")
	}
	if q.push(nil) {
		t.Fatal("an empty chunk was taken into a full queue: chunks cost their overhead")
	}
	if got := q.pop(nil); len(got) != 2 {
		t.Fatalf("pop returned %d chunks, want 2", len(got))
	}
	if !q.push(make([]byte, 100+chunkOverhead)) {
		t.Fatal("pop did not free the space")
	}
	q.pop(nil)
	q.push([]byte("last"))
	q.finish()
	if got := q.pop(nil); len(got) != 1 || string(got[0]) != "last" {
		t.Fatalf("after finish, pop returned %q, want what was queued", got)
	}
	if got := q.pop(nil); got != nil {
		t.Fatalf("after finish and drain, pop returned %q", got)
	}
}

func TestInputQueueChunks(t *testing.T) {
	q := newInputQueue(8)
	done := make(chan bool)
	go func() { done <- q.put([]byte("0123456789abc")) }() // more than the queue holds
	chunk := make([]byte, 5)
	var got []byte
	for len(got) < 13 {
		n, _, ok := q.take(chunk)
		if !ok {
			t.Fatal("closed")
		}
		got = append(got, chunk[:n]...)
		if q.direct([]byte("x"), 5) {
			t.Fatal("a direct write while a chunk is on its way")
		}
		q.release()
	}
	if !<-done || string(got) != "0123456789abc" {
		t.Fatalf("got %q", got)
	}
	// Idle: a short write may go straight; a long one, or one while
	// another is on its way, may not.
	if q.direct([]byte("toolong"), 5) {
		t.Fatal("a write longer than a chunk went straight")
	}
	if !q.direct([]byte("k"), 5) {
		t.Fatal("a keystroke on an idle queue was not sent straight")
	}
	if q.direct([]byte("j"), 5) {
		t.Fatal("two direct writes at once")
	}
	q.release()
	q.close()
	if _, _, ok := q.take(chunk); ok {
		t.Fatal("take after close")
	}
	if q.put([]byte("x")) {
		t.Fatal("put after close")
	}
}
