//go:build linux

package echodev_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"webrepl/internal/echodev"
	"webrepl/internal/leakcheck"
	"webrepl/transport"
)

// start starts a device and opens its line as a host does, with the serial
// transport; both are closed when the test ends.
func start(t *testing.T) (*echodev.Device, io.ReadWriteCloser) {
	t.Helper()
	dev, err := echodev.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := dev.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	rw, err := transport.OpenStream(context.Background(), dev.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rw.Close() })
	return dev, rw
}

func TestEchoesEveryByteValue(t *testing.T) {
	leakcheck.Check(t)
	_, rw := start(t)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, p := range [][]byte{[]byte("x"), all, bytes.Repeat([]byte("typed\r"), 2000)} {
		if _, err := rw.Write(p); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(p))
		if _, err := io.ReadFull(rw, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("echo of %d bytes: got %q, want %q", len(p), head(got), head(p))
		}
	}
}

// want is what a Flood of n bytes writes.
func want(n int) []byte {
	return bytes.Repeat([]byte(echodev.FloodLine), n/len(echodev.FloodLine)+1)[:n]
}

func TestFloodDeliversExactlyN(t *testing.T) {
	leakcheck.Check(t)
	dev, rw := start(t)
	for _, n := range []int{0, 1, 63, 64, 65, 32 << 10, 1<<20 + 37} {
		errc := make(chan error, 1)
		go func() { errc <- dev.Flood(int64(n)) }()
		got := make([]byte, n)
		if _, err := io.ReadFull(rw, got); err != nil {
			t.Fatalf("flood of %d: read: %v", n, err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("flood of %d: %v", n, err)
		}
		if w := want(n); !bytes.Equal(got, w) {
			i := 0
			for got[i] == w[i] {
				i++
			}
			t.Fatalf("flood of %d: byte %d is %q, want %q", n, i, got[i], w[i])
		}
		// Nothing more came: the next byte is the echo of a marker.
		if _, err := rw.Write([]byte("<")); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(rw, b[:]); err != nil {
			t.Fatal(err)
		}
		if b[0] != '<' {
			t.Fatalf("flood of %d: after it came %q, want only the echoed '<'", n, b[0])
		}
	}
}

// TestFloodAtKeepsThePace: a paced flood is the same bytes, and never
// ahead of its pace (a lower bound on its duration, which a loaded
// machine only makes longer).
func TestFloodAtKeepsThePace(t *testing.T) {
	leakcheck.Check(t)
	dev, rw := start(t)
	const n, rate = 100<<10 + 3, 1e6 // 0.1 s
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- dev.FloodAt(n, rate) }()
	got := make([]byte, n)
	if _, err := io.ReadFull(rw, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want(n)) {
		t.Fatal("a paced flood is not FloodLine repeated")
	}
	// The last 1 KiB write is due at (n - 1 KiB) / rate.
	if min := time.Duration(float64(n-1<<10) / rate * float64(time.Second)); time.Since(start) < min {
		t.Fatalf("%d bytes at %.0f B/s took %v, less than %v", n, rate, time.Since(start), min)
	}
}

func TestWriteIsOutput(t *testing.T) {
	leakcheck.Check(t)
	dev, rw := start(t)
	if _, err := dev.Write([]byte("<sync 1>")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8)
	if _, err := io.ReadFull(rw, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "<sync 1>" {
		t.Fatalf("read %q, want %q", got, "<sync 1>")
	}
}

func TestFloodIsNotLostWhileNobodyReads(t *testing.T) {
	leakcheck.Check(t)
	dev, err := echodev.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	// Less than a pseudo-terminal holds: the flood returns at once.
	if err := dev.Flood(1000); err != nil {
		t.Fatal(err)
	}
	rw, err := transport.OpenStream(context.Background(), dev.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	got := make([]byte, 1000)
	if _, err := io.ReadFull(rw, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want(1000)) {
		t.Fatalf("read %q, want the flood", head(got))
	}
}

// TestCloseEndsBlockedFlood: a flood nobody reads fills the
// pseudo-terminal and blocks; Close ends it, also while a host still has
// the line open.
func TestCloseEndsBlockedFlood(t *testing.T) {
	leakcheck.Check(t)
	dev, err := echodev.Start()
	if err != nil {
		t.Fatal(err)
	}
	rw, err := transport.OpenStream(context.Background(), dev.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	// The flood never ends by itself (nobody reads 1 TiB), so whenever
	// Close comes, it must end it.
	errc := make(chan error, 1)
	go func() { errc <- dev.Flood(1 << 40) }()
	var b [4096]byte
	if _, err := io.ReadFull(rw, b[:]); err != nil { // the flood has started
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := <-errc; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("flood after close: %v, want an error matching os.ErrClosed", err)
	}
	if err := dev.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := dev.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after close: %v, want an error matching os.ErrClosed", err)
	}
	// The host sees the hang-up once it has read what was left.
	for {
		if _, err := rw.Read(b[:]); err != nil {
			break
		}
	}
}

func TestFloodRejectsNegative(t *testing.T) {
	dev, err := echodev.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if err := dev.Flood(-1); err == nil {
		t.Fatal("Flood(-1) succeeded")
	}
}

func head(p []byte) []byte { return p[:min(len(p), 40)] }
