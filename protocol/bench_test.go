package protocol

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// The transfer benchmarks run a Client against a faithful Device over the
// in-memory link pair: they measure the protocol code, not a network.

func BenchmarkGet1MiB(b *testing.B) {
	for _, w := range []int{1, 3} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			const size = 1 << 20
			mfs := newMemFS(map[string]string{"/bench": string(pattern(size))})
			s := newSession(b, &DeviceOptions{Password: "pw", FS: mfs}, &ClientOptions{GetWindow: w})
			ctx := testCtx(b)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				n, err := s.c.Get(ctx, "/bench", io.Discard, nil)
				if err != nil || n != size {
					b.Fatalf("Get = %d, %v", n, err)
				}
			}
		})
	}
}

func BenchmarkPut1MiB(b *testing.B) {
	const size = 1 << 20
	data := pattern(size)
	mfs := newMemFS(nil)
	s := newSession(b, &DeviceOptions{Password: "pw", FS: mfs}, nil)
	ctx := testCtx(b)
	r := bytes.NewReader(data)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		if err := s.c.Put(ctx, "/bench", r, size, nil); err != nil {
			b.Fatal(err)
		}
	}
}
