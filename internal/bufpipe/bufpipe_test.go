package bufpipe

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

func TestBothSidesWriteBeforeReading(t *testing.T) {
	a, b := New(0)
	// With net.Pipe these two writes would deadlock.
	if _, err := a.Write([]byte("from a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("from b")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "from a" {
		t.Fatalf("b read %q, %v", got, err)
	}
	if _, err := io.ReadFull(a, got); err != nil || string(got) != "from b" {
		t.Fatalf("a read %q, %v", got, err)
	}
}

func TestLimitBlocksUntilRead(t *testing.T) {
	a, b := New(4)
	data := []byte("0123456789")
	done := make(chan error, 1)
	go func() {
		_, err := a.Write(data)
		done <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCloseDrainsThenEOF(t *testing.T) {
	a, b := New(0)
	a.Write([]byte("last"))
	a.Close()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "last" {
		t.Fatalf("read %q, %v; want the data, then EOF", got, err)
	}
	if _, err := b.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after the other end closed: %v, want net.ErrClosed", err)
	}
}
