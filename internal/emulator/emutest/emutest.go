// Package emutest starts emulated WebREPL devices for tests and
// benchmarks, each on a fresh directory, and stops them when the test ends.
package emutest

import (
	"context"
	"net"
	"testing"

	"webrepl/internal/emulator"
	"webrepl/protocol"
)

// Device is an emulator serving a directory of its own.
type Device struct {
	Emu *emulator.Emulator
	// Dir is the served directory: the device's files.
	Dir string
	// Addr is the loopback host:port of the WebSocket listener, once
	// ListenTCP has run.
	Addr string
}

// New makes an emulator on a fresh directory, or on opts.FS when it is set
// (then Dir is empty). Opts.Logf, when nil, logs through tb.
func New(tb testing.TB, opts emulator.Options) *Device {
	tb.Helper()
	var dir string
	if opts.FS == nil {
		dir = tb.TempDir()
		fsys, err := protocol.DirFS(dir)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { fsys.Close() })
		opts.FS = fsys
	}
	if opts.Logf == nil {
		opts.Logf = tb.Logf
	}
	emu, err := emulator.New(&opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { emu.Close() })
	return &Device{Emu: emu, Dir: dir}
}

// StartTCP makes an emulator and serves it on a loopback port.
func StartTCP(tb testing.TB, opts emulator.Options) *Device {
	tb.Helper()
	d := New(tb, opts)
	d.ListenTCP(tb)
	return d
}

// ListenTCP serves d on a new loopback port and sets d.Addr.
func (d *Device) ListenTCP(tb testing.TB) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	d.Addr = ln.Addr().String()
	Go(tb, func(ctx context.Context) { d.Emu.Serve(ctx, ln) })
}

// Go runs fn in a goroutine whose context is cancelled when the test ends;
// the test then waits for fn to return.
func Go(tb testing.TB, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
}
