// Package echodev is a plain device on a pseudo-terminal, with no
// MicroPython at all: it echoes every byte it receives, as a REPL echoes
// what is typed, and on request floods the line with output as fast as the
// pseudo-terminal takes it. It stands in for a board behind the bridge (or
// any serial client) where a measurement must not include an interpreter:
// echo latency and output throughput.
//
// Start one, open Device.Path with the serial transport as a user opens
// /dev/ttyACM0 (transport.OpenStream, or bridge.BoardConfig{Port: Path}),
// and Close it when done:
//
//	dev, err := echodev.Start()
//	...
//	defer dev.Close()
//	srv, err := bridge.New([]bridge.BoardConfig{{Port: dev.Path}}, opts)
//
// Pseudo-terminals are supported on Linux only; elsewhere Start fails.
package echodev

import (
	"fmt"
	"os"
	"sync"
	"time"

	"webrepl/internal/pty"
)

// FloodLine is the output Flood repeats: 62 printable ASCII characters and
// CRLF. It holds no '<' or '>', so markers written with Write can be told
// from flood output.
const FloodLine = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n"

// floodChunk is how much flood output is written at a time, between which
// echoes and Writes may go out.
const floodChunk = 32 << 10

// floodData is FloodLine repeated to floodChunk bytes.
var floodData = func() []byte {
	b := make([]byte, 0, floodChunk)
	for len(b) < floodChunk {
		b = append(b, FloodLine...)
	}
	return b
}()

// Device is an echo device on a pseudo-terminal.
//
// Concurrency: one goroutine, started by Start and waited for by Close,
// reads the line and echoes. Write, Flood and Close may be called from any
// goroutine at any time. Writes to the line (echoes, Write, each 32 KiB of
// a Flood) are serialised, so each goes out whole; an echo may come out
// between two chunks of a flood. Nothing is read from the line unless
// somebody has it open, and nothing written to it is lost while nobody
// does: it waits in the pseudo-terminal, and a Write or Flood blocks once
// the pseudo-terminal is full, until somebody reads or Close is called.
type Device struct {
	// Path is the slave side of the pseudo-terminal, e.g. /dev/pts/7: the
	// device's serial port for hosts.
	Path string

	pty    *pty.Pty
	master *os.File // non-blocking duplicate of pty.Master: Close unblocks its I/O

	wmu sync.Mutex // serialises writes to master

	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed when the echo loop has returned
}

// Start opens a pseudo-terminal in raw mode (8-bit clean, no line
// discipline) and starts echoing.
func Start() (*Device, error) {
	p, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("echodev: %w", err)
	}
	m, err := nonblockingDup(p.Master)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("echodev: %w", err)
	}
	d := &Device{Path: p.Name, pty: p, master: m, done: make(chan struct{})}
	go d.echoLoop()
	return d, nil
}

// echoLoop writes back every byte a host writes, until Close.
func (d *Device) echoLoop() {
	defer close(d.done)
	buf := make([]byte, 4096)
	for {
		n, err := d.master.Read(buf)
		if n > 0 {
			if _, werr := d.write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (d *Device) write(p []byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return d.master.Write(p)
}

// Write writes p to the line as the device's output, in one piece. It
// blocks while the pseudo-terminal is full. After Close it fails with an
// error matching os.ErrClosed.
func (d *Device) Write(p []byte) (int, error) {
	n, err := d.write(p)
	if err != nil {
		return n, fmt.Errorf("echodev: write: %w", err)
	}
	return n, nil
}

// Flood writes n bytes of output to the line as fast as the
// pseudo-terminal takes them: FloodLine repeated, the last copy cut short,
// starting with a whole line whatever the previous Flood wrote. It returns
// once every byte is in the pseudo-terminal (not necessarily read yet). If
// Close is called meanwhile, it stops and returns an error matching
// os.ErrClosed. Floods from several goroutines at once interleave in 32 KiB
// pieces.
func (d *Device) Flood(n int64) error { return d.FloodAt(n, 0) }

// pacedChunk is how much a paced flood writes at a time, as a board on
// USB sends a packet or two of output at a time.
const pacedChunk = 1 << 10

// FloodAt is Flood at a board's pace: bytesPerSecond on average, in
// 1 KiB writes at even times (each write as late as the pace asks, never
// ahead of it). A bytesPerSecond of zero or less means as fast as the
// pseudo-terminal takes it.
func (d *Device) FloodAt(n int64, bytesPerSecond float64) error {
	if n < 0 {
		return fmt.Errorf("echodev: flood: negative count %d", n)
	}
	chunk, start, sent := int64(len(floodData)), time.Now(), int64(0)
	if bytesPerSecond > 0 {
		chunk = pacedChunk
	}
	for sent < n {
		if bytesPerSecond > 0 {
			due := start.Add(time.Duration(float64(sent) / bytesPerSecond * float64(time.Second)))
			time.Sleep(time.Until(due))
		}
		k := min(n-sent, chunk)
		// floodData starts and ends with whole lines, and chunk divides
		// it, so the output is FloodLine repeated whatever the chunks.
		off := sent % int64(len(floodData))
		k = min(k, int64(len(floodData))-off)
		if _, err := d.write(floodData[off : off+k]); err != nil {
			return fmt.Errorf("echodev: flood: %w", err)
		}
		sent += k
	}
	return nil
}

// Close stops the device: it ends a pending Write or Flood, waits for the
// echo goroutine and closes the pseudo-terminal, which hangs up the hosts
// that have it open (their reads fail). It is idempotent.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.master.Close()
		<-d.done
		if err := d.pty.Close(); err != nil {
			d.closeErr = fmt.Errorf("echodev: close: %w", err)
		}
	})
	return d.closeErr
}
