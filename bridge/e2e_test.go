package bridge_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"testing"
	"time"

	"webrepl/bridge"
	"webrepl/internal/leakcheck"
	"webrepl/protocol"
)

func TestTerminalAndFiles(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	c := login(t, br.URL, testPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	typeLine(t, c, "print(6*7)")
	expect(t, c, "42")

	data := make([]byte, 5000)
	rand.Read(data)
	if err := c.Put(ctx, "blob.bin", bytes.NewReader(data), int64(len(data)), nil); err != nil {
		t.Fatalf("put: %v", err)
	}
	out := expect(t, c, ">>> ")
	if bytes.Contains([]byte(out), []byte("raw REPL")) {
		t.Errorf("raw-REPL traffic reached the terminal: %q", out)
	}
	var got bytes.Buffer
	if _, err := c.Get(ctx, "blob.bin", &got, nil); err != nil {
		t.Fatalf("get: %v", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("get returned %d bytes, want the %d put", got.Len(), len(data))
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
	expect(t, c, "5000")
}
