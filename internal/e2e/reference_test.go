package e2e

import (
	"bytes"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"webrepl/internal/emulator"
	"webrepl/internal/emulator/emutest"
	"webrepl/internal/leakcheck"
	"webrepl/protocol"
)

// The exchanges of reference/webrepl.md §6, byte for byte as the reference
// client webrepl_cli.py puts them on TCP (unmasked frames, key "foo", the
// password in a binary frame, the PUT header split 10 + 72), played against
// the emulator on loopback. What the emulator sends back must be exactly
// what the firmware sends.

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	// "00×55" in the reference is written here as a repeat marker "00*55".
	var out []byte
	for _, w := range strings.Fields(s) {
		if b, n, ok := strings.Cut(w, "*"); ok {
			var count int
			for _, c := range n {
				count = count*10 + int(c-'0')
			}
			v, err := hex.DecodeString(b)
			if err != nil {
				t.Fatalf("bad hex %q", w)
			}
			out = append(out, bytes.Repeat(v, count)...)
			continue
		}
		v, err := hex.DecodeString(w)
		if err != nil {
			t.Fatalf("bad hex %q", w)
		}
		out = append(out, v...)
	}
	return out
}

type step struct {
	name string
	send bool // client to device
	hex  string
	text string // used instead of hex when set
}

func (s step) bytes(t *testing.T) []byte {
	if s.text != "" {
		return []byte(s.text)
	}
	return unhex(t, s.hex)
}

var (
	handshake = []step{
		{name: "H1", send: true, text: "GET / HTTP/1.1\r\nHost: echo.websocket.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: foo\r\n\r\n"},
		{name: "H2", text: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: BM0S0+ghftShuFVHQATK/DBiJq8=\r\n\r\n"},
		{name: "L1", hex: "81 0a 50 61 73 73 77 6f 72 64 3a 20"},
	}
	loginOK = []step{
		{name: "L2", send: true, hex: "82 07 73 65 63 72 65 74 0d"},
		{name: "L3", hex: "81 19 0d 0a 57 65 62 52 45 50 4c 20 63 6f 6e 6e 65 63 74 65 64 0d 0a 3e 3e 3e 20"},
		{name: "V1", send: true, hex: "82 52 57 41 03 00 00*78"},
		{name: "V2", hex: "82 03 01 13 01"},
	}
	getFile = []step{
		{name: "G1", send: true, hex: "82 52 57 41 02 00 00 00 00 00 00 00 00 00 00 00 00 00 09 00 2f 74 65 73 74 2e 74 78 74 00*55"},
		{name: "G2", hex: "82 04 57 42 00 00"},
		{name: "G3", send: true, hex: "82 01 00"},
		{name: "G4", hex: "82 0c 0a 00 30 31 32 33 34 35 36 37 38 39"},
		{name: "G5", send: true, hex: "82 01 00"},
		{name: "G6", hex: "82 02 00 00"},
		{name: "G7", hex: "82 04 57 42 00 00"},
	}
	putFile = []step{
		{name: "P1a", send: true, hex: "82 0a 57 41 01 00 00 00 00 00 00 00"},
		{name: "P1b", send: true, hex: "82 48 00 00 0a 00 00 00 09 00 2f 74 65 73 74 2e 74 78 74 00*55"},
		{name: "P2", hex: "82 04 57 42 00 00"},
		{name: "P3", send: true, hex: "82 0a 41 42 43 44 45 46 47 48 49 4a"},
		{name: "P4", hex: "82 04 57 42 00 00"},
	}
)

func play(t *testing.T, conn net.Conn, steps []step) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	for _, s := range steps {
		b := s.bytes(t)
		if s.send {
			if _, err := conn.Write(b); err != nil {
				t.Fatalf("%s: write: %v", s.name, err)
			}
			continue
		}
		got := make([]byte, len(b))
		if _, err := io.ReadFull(conn, got); err != nil {
			t.Fatalf("%s: read %d bytes: %v (got % x)", s.name, len(b), err, got)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%s: device sent\n% x\nwant\n% x", s.name, got, b)
		}
	}
}

func startReferenceDevice(t *testing.T) (addr, dir string) {
	t.Helper()
	d := emutest.StartTCP(t, emulator.Options{Password: password, Version: protocol.Version{Major: 1, Minor: 19, Micro: 1}})
	return d.Addr, d.Dir
}

// dialReference connects as webrepl_cli.py does and plays the handshake and
// the password prompt (H1, H2, L1).
func dialReference(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	play(t, conn, handshake)
	return conn
}

func TestReferenceClientTranscripts(t *testing.T) {
	t.Run("get", func(t *testing.T) {
		leakcheck.Check(t)
		addr, dir := startReferenceDevice(t)
		os.WriteFile(filepath.Join(dir, "test.txt"), []byte("0123456789"), 0o644)
		conn := dialReference(t, addr)
		play(t, conn, loginOK)
		play(t, conn, getFile)
	})
	t.Run("put", func(t *testing.T) {
		leakcheck.Check(t)
		addr, dir := startReferenceDevice(t)
		conn := dialReference(t, addr)
		play(t, conn, loginOK)
		play(t, conn, putFile)
		if got, err := os.ReadFile(filepath.Join(dir, "test.txt")); err != nil || string(got) != "ABCDEFGHIJ" {
			t.Fatalf("device file: %q, %v; want ABCDEFGHIJ", got, err)
		}
	})
	t.Run("access denied", func(t *testing.T) {
		leakcheck.Check(t)
		addr, _ := startReferenceDevice(t)
		conn := dialReference(t, addr)
		play(t, conn, []step{
			{name: "L2 wrong", send: true, hex: "82 06 77 72 6f 6e 67 0d"},
			{name: "L3 bad", hex: "81 11 0d 0a 41 63 63 65 73 73 20 64 65 6e 69 65 64 0d 0a"},
		})
		// Then the TCP connection closes, with no close frame.
		rest, err := io.ReadAll(conn)
		if err != nil || len(rest) != 0 {
			t.Fatalf("after Access denied: % x, %v; want a plain close", rest, err)
		}
	})
	t.Run("second client", func(t *testing.T) {
		leakcheck.Check(t)
		addr, _ := startReferenceDevice(t)
		dialReference(t, addr) // the first client holds the session
		second, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		play(t, second, handshake[:2])  // a completed 101 ...
		rest, err := io.ReadAll(second) // ... then a close, with no prompt
		if err != nil || len(rest) != 0 {
			t.Fatalf("second client got % x, %v; want the connection closed", rest, err)
		}
	})
}
