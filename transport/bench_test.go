package transport

import (
	"io"
	"testing"
)

// discardRW takes writes and never reads.
type discardRW struct{}

func (discardRW) Read(p []byte) (int, error)  { return 0, io.EOF }
func (discardRW) Write(p []byte) (int, error) { return len(p), nil }
func (discardRW) Close() error                { return nil }

// repeatRW reads the same frame over and over.
type repeatRW struct {
	frame []byte
	off   int
}

func (r *repeatRW) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.frame[r.off:])
		n += c
		r.off = (r.off + c) % len(r.frame)
	}
	return n, nil
}
func (r *repeatRW) Write(p []byte) (int, error) { return len(p), nil }
func (r *repeatRW) Close() error                { return nil }

func BenchmarkWriteMessage(b *testing.B) {
	p := make([]byte, 1024)
	for _, role := range []Role{Client, Server} {
		b.Run(role.String(), func(b *testing.B) {
			c := NewConn(discardRW{}, nil, &Options{Role: role})
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.WriteMessage(bg(), true, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadMessage(b *testing.B) {
	p := make([]byte, 1024)
	for _, role := range []Role{Client, Server} {
		b.Run(role.String(), func(b *testing.B) {
			// A client reads the server's unmasked frames; a server reads
			// the client's masked ones.
			peer := Server
			if role == Server {
				peer = Client
			}
			rec := newMemRW(nil)
			if err := NewConn(rec, nil, &Options{Role: peer}).WriteMessage(bg(), true, p); err != nil {
				b.Fatal(err)
			}
			c := NewConn(&repeatRW{frame: rec.written()}, nil, &Options{Role: role})
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if _, q, err := c.ReadMessage(bg()); err != nil || len(q) != len(p) {
					b.Fatal(len(q), err)
				}
			}
		})
	}
}
