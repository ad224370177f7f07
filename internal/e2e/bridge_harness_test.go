//go:build linux

package e2e

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"webrepl/internal/echodev"
)

// Tests of the bridge benchmarks' harness, so that the benchmarks measure
// what they claim: nothing here is timed.

// TestBridgeBenchHarness runs the benchmarks' steps once, small: an echo
// through the bridge, then a flood that every observer must receive whole
// and unchanged.
func TestBridgeBenchHarness(t *testing.T) {
	dev := startEchoDev(t)
	url := startBridge(t, dev.Path, 8, 0)
	c := loginClient(t, url)
	if _, err := c.Write([]byte("e")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := make([]byte, 16)
	n, err := c.ReadContext(ctx, in)
	if err != nil || string(in[:n]) != "e" {
		t.Fatalf("echo: %q, %v; want \"e\"", in[:n], err)
	}

	readers := connectReaders(t, dev, url, 3, true)
	const size = 300<<10 + 5
	go dev.Flood(size) // a failure shows as missing bytes
	want := bytes.Repeat([]byte(echodev.FloodLine), size/len(echodev.FloodLine)+1)[:size]
	for i, r := range readers {
		var got []byte
		for len(got) < size {
			_, p, err := r.conn.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("observer %d after %d bytes: %v", i, len(got), err)
			}
			got = append(got, p...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("observer %d received %d bytes that are not the flood", i, len(got))
		}
	}
	// The controller got it too, after the readers' marker.
	want = append([]byte("<sync>"), want...)
	var all []byte
	for len(all) < len(want) {
		n, err := c.ReadContext(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, in[:n]...)
	}
	if !bytes.Equal(all, want) {
		t.Fatalf("the controller received %d bytes that are not the flood", len(all))
	}
	// readEach counts a flood exactly.
	errc := make(chan error, 1)
	go func() { errc <- dev.Flood(size) }()
	if err := readEach(readers, size); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestPercentile(t *testing.T) {
	d := make([]time.Duration, 200)
	for i := range d {
		d[i] = time.Duration(i + 1)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 100}, {99, 198}, {100, 200}, {0, 1}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("percentile %v of 1..200: got %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile of nothing: got %v, want 0", got)
	}
}

func TestParseStatTicks(t *testing.T) {
	// A name with a space and a parenthesis, as /proc allows.
	line := "4242 (web repl) x) S 1 4242 4242 0 -1 4194560 1353 0 0 0 31 12 0 0 20 0 9 0 1234 1000 500 18446744073709551615\n"
	got, err := parseStatTicks([]byte(line))
	if err != nil || got != 43 {
		t.Fatalf("got %d, %v; want 43 (utime 31 + stime 12)", got, err)
	}
	if _, err := parseStatTicks([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("a short line parsed")
	}
	// This process's own line parses.
	if _, err := cpuTicks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS([]byte("Name:\twebrepl\nVmHWM:\t  9000 kB\nVmRSS:\t    8704 kB\nRssAnon:\t 3000 kB\n"))
	if err != nil || got != 8704<<10 {
		t.Fatalf("got %d, %v; want %d", got, err, 8704<<10)
	}
	if _, err := parseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Fatal("no VmRSS line parsed")
	}
	if _, err := rss(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}
