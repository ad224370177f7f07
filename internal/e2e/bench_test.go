package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"webrepl/internal/emulator"
	"webrepl/internal/emulator/emutest"
	"webrepl/protocol"
	"webrepl/transport"
)

// Transfers between our client and the faithful emulator on loopback TCP.
// The emulator writes like firmware (each frame's header and payload in
// separate writes, Nagle's algorithm on), so the figures say what a real
// board's network stack would let through, not what Go can do with itself.

func benchDevice(b *testing.B) (addr, dir string) {
	b.Helper()
	d := emutest.StartTCP(b, emulator.Options{Password: password, Logf: func(string, ...any) {}})
	return d.Addr, d.Dir
}

func benchLogin(b *testing.B, link protocol.Link, opts *protocol.ClientOptions) *protocol.Client {
	b.Helper()
	c, err := protocol.Login(context.Background(), link, password, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// referenceLink connects the way webrepl_cli.py does on TCP: its own
// handshake, Nagle's algorithm left on, no quick ACKs. With one ack per
// chunk this is the baseline the reference measured at ~2.8 KB/s.
func referenceLink(b *testing.B, addr string) protocol.Link {
	b.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	conn.(*net.TCPConn).SetNoDelay(false)
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: echo.websocket.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: foo\r\n\r\n")
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatalf("handshake: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	return transport.NewConn(conn, br, &transport.Options{Role: transport.Client})
}

func dialLink(b *testing.B, addr string) protocol.Link {
	b.Helper()
	link, err := transport.Dial(context.Background(), "ws://"+addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	return link
}

// BenchmarkGet compares GET of one file in the reference client's way
// (baseline) with ours: TCP_NODELAY and TCP_QUICKACK, then up to three
// acks in flight. Run scripts/bench to see the ratios.
func BenchmarkGet(b *testing.B) {
	for _, tc := range []struct {
		name   string
		size   int
		window int
		ref    bool
	}{
		{"baseline-reference-tcp-window1/16KiB", 16 << 10, 1, true},
		{"nodelay-quickack-window1/100KiB", 100 << 10, 1, false},
		{"nodelay-quickack-window3/100KiB", 100 << 10, 3, false},
		{"nodelay-quickack-window3/1MiB", 1 << 20, 3, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			addr, dir := benchDevice(b)
			data := make([]byte, tc.size)
			rand.Read(data)
			if err := os.WriteFile(filepath.Join(dir, "f.bin"), data, 0o644); err != nil {
				b.Fatal(err)
			}
			var link protocol.Link
			if tc.ref {
				link = referenceLink(b, addr)
			} else {
				link = dialLink(b, addr)
			}
			c := benchLogin(b, link, &protocol.ClientOptions{GetWindow: tc.window})
			var buf bytes.Buffer
			b.SetBytes(int64(tc.size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				buf.Reset()
				n, err := c.Get(context.Background(), "f.bin", &buf, nil)
				if err != nil || n != int64(tc.size) {
					b.Fatalf("get: %d bytes, %v", n, err)
				}
			}
			b.ReportMetric(float64(tc.size)*float64(b.N)/b.Elapsed().Seconds()/1e3, "kB/s")
		})
	}
}

// BenchmarkPut sends 1 MiB in 1024-byte frames, as firmware needs.
func BenchmarkPut(b *testing.B) {
	for _, size := range []int{1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			addr, _ := benchDevice(b)
			c := benchLogin(b, dialLink(b, addr), nil)
			data := make([]byte, size)
			rand.Read(data)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := c.Put(context.Background(), "f.bin", bytes.NewReader(data), int64(size), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
