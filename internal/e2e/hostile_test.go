package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"webrepl/internal/emulator"
	"webrepl/internal/leakcheck"
)

// TestHostileClientsDoNotStopTheDevice sends the emulator what a broken or
// malicious client might, each on its own connection, and checks after each
// that the connection ends cleanly and a well-behaved client still gets in.
func TestHostileClientsDoNotStopTheDevice(t *testing.T) {
	leakcheck.Check(t)
	d := startTCP(t, emulator.Options{HandshakeTimeout: 300 * time.Millisecond})
	addr := d.Addr

	afterLogin := func(frames ...[]byte) []byte {
		var b []byte
		b = append(b, []byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: foo\r\n\r\n")...)
		b = append(b, unhex(t, "82 07 73 65 63 72 65 74 0d")...)
		for _, f := range frames {
			b = append(b, f...)
		}
		return b
	}
	for _, tc := range []struct {
		name  string
		bytes []byte
		// hangUp: the client then stops sending (the device, like
		// firmware, would wait for the rest of a frame or request).
		hangUp bool
	}{
		{"garbage instead of a handshake", []byte("\x00\x01\x02 hello \xff\xfe\r\n\r\n"), false},
		{"header flood", append([]byte("GET / HTTP/1.1\r\n"), bytes.Repeat([]byte("X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"), 2000)...), false},
		{"stalled handshake", []byte("GET / HTTP/1.1\r\nHost: x\r\n"), false},
		{"plain HTTP", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
		{"64-bit frame length", afterLogin(unhex(t, "82 7f 7f ff ff ff ff ff ff ff")), false},
		{"frame cut short", afterLogin(unhex(t, "82 7e ff ff 00 01 02")), true},
		{"path escape", afterLogin(unhex(t, "82 52 57 41 01 00 00*8 01 00 00 00 0c 00 2e 2e 2f 65 73 63 61 70 65 2e 74 78 74 00*51")), false},
		{"unknown op", afterLogin(unhex(t, "82 52 57 41 09 00 00*78")), true},
		{"vanishes mid-put", afterLogin(unhex(t, "82 52 57 41 01 00 00*8 00 10 00 00 05 00 2f 61 2e 74 78 74 00*58"), unhex(t, "82 03 61 62 63")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			if tc.hangUp {
				conn.(*net.TCPConn).CloseWrite()
			}
			// The device must end the connection by itself (a reset
			// counts: it closed while we were still sending), or after
			// our half-close.
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the device did not end the connection: %v", err)
			}
			c := login(t, d, password)
			if _, err := c.Version(context.Background()); err != nil {
				t.Fatalf("a good client after %s: %v", tc.name, err)
			}
			c.Close()
		})
	}
	// Neither the escape nor the interrupted PUT left anything behind.
	entries, err := os.ReadDir(d.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left on the device: %s", e.Name())
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(d.Dir), "escape.txt")); err == nil {
		t.Error("the path escape wrote outside the device directory")
	}
}
