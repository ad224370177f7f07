//go:build linux

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"webrepl/internal/echodev"
	"webrepl/protocol"
	"webrepl/transport"
)

// The bridge's figures, each beside a baseline measured in the same run,
// with a plain echo device (package echodev, no MicroPython) on a
// pseudo-terminal as the board. scripts/bench prints them with their
// targets:
//
//	go test -run '^$' -bench '^Benchmark(Echo|Output|BridgeProcess)$' ./internal/e2e
//
//   - BenchmarkEcho: one typed byte and its echo. direct: on the
//     pseudo-terminal opened with the serial transport; bridge: a logged-in
//     protocol.Client through the bridge on 127.0.0.1. Reports p50-us and
//     p99-us, and for the bridge added-p50-us and added-p99-us over direct.
//   - BenchmarkOutput: outputMiB flooded by the device per op. direct: read
//     from the pseudo-terminal; bridge-1: one logged-in client; bridge-100:
//     100 logged-in observers, each receiving every byte (MB/s is per
//     client). Reports x-direct, MB/s over direct's. bridge-100-at-1MBps:
//     1 MiB per op at a USB board's pace to 100 observers; x-board-rate is
//     the observers' rate over the board's.
//   - BenchmarkBridgeProcess: the bridge as its own process (webrepl
//     bridge, built into a temporary directory) so that its memory and CPU
//     are its own: rss-idle-MiB, rss-per-observer-KiB (100 idle observers),
//     cpu-s/MB (a 64 MiB flood to one client) beside baseline-cpu-s/MB,
//     what `head -c` reading the pseudo-terminal directly spends, and
//     cpu-s/MB-100-observers (a 3 MiB flood that each of 100 observers
//     receives), per MB of board output.
//
// In BenchmarkEcho and BenchmarkOutput the bridge runs in the benchmark's
// process, as do the device and the clients: on a machine with few cores
// they compete for them, as they would on one host in real use.

const (
	observers        = 100 // sessions of bridge-100 and of the memory figure
	outputMiB        = 8   // flooded per op of BenchmarkOutput
	processFloodMB   = 64  // flooded to measure the bridge process's CPU, one client
	observersFloodMB = 3   // the same, to the 100 observers: less than a client's buffer (4 MiB), which they fill
)

// benchDeadline bounds one op's reads, so that a benchmark whose client
// lost bytes fails instead of hanging.
const benchDeadline = 2 * time.Minute

// startEchoDev starts an echo device, closed when the benchmark ends.
func startEchoDev(tb testing.TB) *echodev.Device {
	tb.Helper()
	dev, err := echodev.Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dev.Close() })
	return dev
}

// openDirect opens the device's line with the serial transport.
func openDirect(tb testing.TB, dev *echodev.Device) io.ReadWriteCloser {
	tb.Helper()
	rw, err := transport.OpenStream(context.Background(), dev.Path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rw.Close() })
	return rw
}

// loginClient logs a protocol.Client in at url and drains what the login
// left in its terminal (the prompt) by waiting for the echo of a marker.
func loginClient(tb testing.TB, url string) *protocol.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := transport.Dial(ctx, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := protocol.Login(ctx, conn, password, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	if _, err := c.WriteContext(ctx, []byte("<")); err != nil {
		tb.Fatal(err)
	}
	var seen []byte
	buf := make([]byte, 256)
	for !strings.HasSuffix(string(seen), "<") {
		n, err := c.ReadContext(ctx, buf)
		if err != nil {
			tb.Fatalf("waiting for the echo of the marker: %v (got %q)", err, seen)
		}
		seen = append(seen, buf[:n]...)
	}
	return c
}

// echoDurations runs op once per benchmark iteration and returns each
// iteration's duration.
func echoDurations(b *testing.B, op func(c byte) error) []time.Duration {
	b.Helper()
	for i := range 100 { // warm up: pages, poller, scheduler
		if err := op(byte('a' + i%26)); err != nil {
			b.Fatal(err)
		}
	}
	var d []time.Duration
	i := 0
	for b.Loop() {
		t := time.Now()
		if err := op(byte('a' + i%26)); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(t))
		i++
	}
	return d
}

// percentile returns the p-th percentile (nearest rank) of sorted d.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkEcho measures one keystroke's echo, straight on the
// pseudo-terminal, through the bridge in this process, and through
// `webrepl bridge` as a process of its own (with the command's defaults).
func BenchmarkEcho(b *testing.B) {
	var direct [2]time.Duration // p50, p99 of direct in this run
	for _, name := range []string{"direct", "bridge", "bridge-process"} {
		b.Run(name, func(b *testing.B) {
			dev := startEchoDev(b)
			var op func(c byte) error
			if name == "direct" {
				rw := openDirect(b, dev)
				var in [1]byte
				op = func(c byte) error {
					if _, err := rw.Write([]byte{c}); err != nil {
						return err
					}
					if _, err := io.ReadFull(rw, in[:]); err != nil {
						return err
					}
					if in[0] != c {
						return fmt.Errorf("echo %q, want %q", in[0], c)
					}
					return nil
				}
			} else {
				var url string
				if name == "bridge" {
					url = startBridge(b, dev.Path, 8, 0)
				} else {
					url = startBridgeProcess(b, buildWebrepl(b), dev.Path).url
				}
				c := loginClient(b, url)
				in := make([]byte, 16)
				ctx := context.Background()
				op = func(ch byte) error {
					if _, err := c.Write([]byte{ch}); err != nil {
						return err
					}
					n, err := c.ReadContext(ctx, in)
					if err != nil {
						return err
					}
					if n != 1 || in[0] != ch {
						return fmt.Errorf("echo %q, want %q", in[:n], ch)
					}
					return nil
				}
			}
			d := echoDurations(b, op)
			slices.Sort(d)
			p50, p99 := percentile(d, 50), percentile(d, 99)
			b.ReportMetric(us(p50), "p50-us")
			b.ReportMetric(us(p99), "p99-us")
			if name == "direct" {
				direct = [2]time.Duration{p50, p99}
			} else if direct[0] > 0 {
				b.ReportMetric(us(p50-direct[0]), "added-p50-us")
				b.ReportMetric(us(p99-direct[1]), "added-p99-us")
			}
		})
	}
}

// BenchmarkOutput measures board output reaching its readers: straight
// from the pseudo-terminal, through the bridge to one client, and to 100
// observers.
func BenchmarkOutput(b *testing.B) {
	const n = outputMiB << 20
	var directMBs float64
	for _, tc := range []struct {
		name    string
		clients int
	}{{"direct", 0}, {"bridge-1", 1}, {"bridge-100", observers}} {
		b.Run(tc.name, func(b *testing.B) {
			dev := startEchoDev(b)
			var readAll func() error
			if tc.clients == 0 {
				rw := openDirect(b, dev)
				buf := make([]byte, 32<<10)
				readAll = func() error {
					for got := 0; got < n; {
						k, err := rw.Read(buf[:min(len(buf), n-got)])
						got += k
						if err != nil {
							return err
						}
					}
					return nil
				}
			} else {
				// 100 observers cannot keep up with a pseudo-terminal's
				// flood (each byte becomes 100 frames' worth on the same
				// two cores): their buffers hold the whole flood, so that
				// the figure is how fast the bridge feeds them rather
				// than how soon it drops them.
				buffer := 0
				if tc.clients > 1 {
					buffer = 2 * n
				}
				url := startBridge(b, dev.Path, tc.clients+1, buffer)
				readers := connectReaders(b, dev, url, tc.clients, tc.clients > 1)
				readAll = func() error { return readEach(readers, n) }
			}
			b.SetBytes(n)
			for b.Loop() {
				errc := make(chan error, 1)
				go func() { errc <- dev.Flood(n) }()
				if err := readAll(); err != nil {
					b.Fatal(err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
			mbs := float64(n) * float64(b.N) / b.Elapsed().Seconds() / 1e6
			if tc.clients == 0 {
				directMBs = mbs
			} else if directMBs > 0 {
				b.ReportMetric(mbs/directMBs, "x-direct")
			}
		})
	}
	// A board as fast as full-speed USB gets in practice (about 1 MB/s):
	// every observer should keep up with it.
	b.Run("bridge-100-at-1MBps", func(b *testing.B) {
		const n, rate = 1 << 20, 1e6
		dev := startEchoDev(b)
		url := startBridge(b, dev.Path, observers+1, 0)
		readers := connectReaders(b, dev, url, observers, true)
		b.SetBytes(n)
		var boardTime time.Duration
		for b.Loop() {
			errc := make(chan error, 1)
			go func() {
				t := time.Now()
				err := dev.FloodAt(n, rate)
				boardTime += time.Since(t)
				errc <- err
			}()
			if err := readEach(readers, n); err != nil {
				b.Fatal(err)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
		// How fast each observer received, over how fast the board sent.
		b.ReportMetric(boardTime.Seconds()/b.Elapsed().Seconds(), "x-board-rate")
	})
}

// frameReader is a logged-in WebREPL session read as raw frames: the
// cheapest client, so that the figures are the bridge's.
type frameReader struct {
	conn *transport.Conn
	tail []byte // the end of the text read so far, for finding markers
}

// rawLogin logs in at url (the password exchange of protocol.Login,
// without its reading goroutine) over a cheapDial connection and returns
// the session.
func rawLogin(ctx context.Context, url string) (*frameReader, error) {
	conn, err := cheapDial(ctx, url)
	if err != nil {
		return nil, err
	}
	r := &frameReader{conn: conn}
	if err := r.until(ctx, "Password: "); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.WriteMessage(ctx, false, []byte(password+"\r")); err != nil {
		conn.Close()
		return nil, err
	}
	if err := r.until(ctx, "WebREPL connected"); err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

// cheapDial opens a client-role Conn to a ws:// url, made for reading
// much output cheaply: unlike transport.Dial's it does not set
// TCP_QUICKACK before every read (a system call per read, which only
// matters to request-reply traffic), and it reads through a 256 KiB
// buffer, so that one read system call takes in many frames.
func cheapDial(ctx context.Context, url string) (*transport.Conn, error) {
	u, err := neturl.Parse(url)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var key [16]byte
	rand.Read(key[:])
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key[:]))
	br := bufio.NewReaderSize(conn, 256<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		return nil, fmt.Errorf("handshake: %s", resp.Status)
	}
	conn.SetDeadline(time.Time{})
	return transport.NewConn(conn, br, &transport.Options{Role: transport.Client}), nil
}

// until reads text until marker has come.
func (r *frameReader) until(ctx context.Context, marker string) error {
	for !strings.Contains(string(r.tail), marker) {
		r.tail = r.tail[max(0, len(r.tail)-len(marker)):]
		binary, p, err := r.conn.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %q: %w", marker, err)
		}
		if !binary {
			r.tail = append(r.tail, p...)
		}
	}
	r.tail = r.tail[:0]
	return nil
}

// count reads n bytes of text (binary messages are an error: the bridge
// sends none unasked).
func (r *frameReader) count(ctx context.Context, n int64) error {
	for got := int64(0); got < n; {
		binary, p, err := r.conn.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", got, n, err)
		}
		if binary {
			return fmt.Errorf("after %d of %d bytes: an unexpected binary message", got, n)
		}
		got += int64(len(p))
		if got > n {
			return fmt.Errorf("got %d bytes, want %d", got, n)
		}
	}
	return nil
}

// connectReaders logs k sessions in at addr (observers with "?observe" if
// observe), waits until the bridge counts them as members (besides those
// it had), and
// brings each to the same point of the output with a marker from the
// device. They are closed when the benchmark ends.
func connectReaders(tb testing.TB, dev *echodev.Device, addr string, k int, observe bool) []*frameReader {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	already := memberCount(tb, addr)
	url := addr
	if observe {
		url += "?observe"
	}
	readers := make([]*frameReader, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8) // the bridge takes 16 logins at once from one address
	for i := range readers {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			readers[i], errs[i] = rawLogin(ctx, url)
		})
	}
	wg.Wait()
	tb.Cleanup(func() {
		for _, r := range readers {
			if r != nil {
				r.conn.Close()
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	waitMembers(tb, addr, already+k)
	// Every session is a member now, so each gets the marker, after
	// whatever the bridge told it on joining.
	if _, err := dev.Write([]byte("<sync>")); err != nil {
		tb.Fatal(err)
	}
	for i, r := range readers {
		wg.Go(func() { errs[i] = r.until(ctx, "<sync>") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return readers
}

// readEach has every reader read n bytes, at the same time.
func readEach(readers []*frameReader, n int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), benchDeadline)
	defer cancel()
	errs := make([]error, len(readers))
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Go(func() { errs[i] = r.count(ctx, n) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("reader %d: %w", i, err)
		}
	}
	return nil
}

// BenchmarkBridgeProcess measures the bridge as a process of its own, one
// fresh process per op: its resident memory when idle and per idle
// observer, the CPU it spends on a flood to those 100 observers, and on a
// 64 MiB flood to one client beside the CPU of a minimal reader of the
// pseudo-terminal (head -c).
func BenchmarkBridgeProcess(b *testing.B) {
	bin := buildWebrepl(b)
	var sum processFigures
	ops := 0
	for b.Loop() {
		f := measureBridgeProcess(b, bin)
		sum.rssIdle += f.rssIdle
		sum.perObserver += f.perObserver
		sum.cpuPerMB += f.cpuPerMB
		sum.cpu100PerMB += f.cpu100PerMB
		sum.baseCPUPerMB += f.baseCPUPerMB
		ops++
	}
	n := float64(ops)
	b.ReportMetric(sum.rssIdle/n/(1<<20), "rss-idle-MiB")
	b.ReportMetric(sum.perObserver/n/(1<<10), "rss-per-observer-KiB")
	b.ReportMetric(sum.cpuPerMB/n, "cpu-s/MB")
	b.ReportMetric(sum.cpu100PerMB/n, "cpu-s/MB-100-observers")
	b.ReportMetric(sum.baseCPUPerMB/n, "baseline-cpu-s/MB")
}

// processFigures are one measurement of a bridge process.
type processFigures struct {
	rssIdle      float64 // bytes
	perObserver  float64 // bytes
	cpuPerMB     float64 // CPU-seconds per 1e6 bytes of output, one client
	cpu100PerMB  float64 // the same with 100 observers, each receiving all
	baseCPUPerMB float64 // the same for head -c reading the pseudo-terminal
}

// buildWebrepl builds cmd/webrepl into a temporary directory.
func buildWebrepl(b testing.TB) string {
	b.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		b.Skip("the go command is not on PATH")
	}
	bin := filepath.Join(b.TempDir(), "webrepl")
	out, err := exec.Command(goTool, "build", "-o", bin, "webrepl/cmd/webrepl").CombinedOutput()
	if err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// bridgeProcess is a running `webrepl bridge`.
type bridgeProcess struct {
	cmd    *exec.Cmd
	url    string
	stderr string // path of the file holding its logs
}

// startBridgeProcess runs `webrepl bridge` for the device and waits for the
// address it prints.
func startBridgeProcess(tb testing.TB, bin, port string) *bridgeProcess {
	tb.Helper()
	logs := filepath.Join(tb.TempDir(), "bridge.log")
	errFile, err := os.Create(logs)
	if err != nil {
		tb.Fatal(err)
	}
	defer errFile.Close()
	cmd := exec.Command(bin, "bridge", "--port", port, "--listen", "127.0.0.1:0",
		"--password", password, "--max-clients", fmt.Sprint(observers+8))
	cmd.Stderr = errFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &bridgeProcess{cmd: cmd, stderr: logs}
	tb.Cleanup(p.stop)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if i := strings.Index(sc.Text(), "ws://"); i >= 0 {
			p.url = strings.Fields(sc.Text()[i:])[0]
			break
		}
	}
	if p.url == "" {
		tb.Fatalf("webrepl bridge printed no ws:// address; its log:\n%s", p.logs())
	}
	go io.Copy(io.Discard, stdout) // it prints nothing more; never block it
	return p
}

func (p *bridgeProcess) logs() string {
	b, _ := os.ReadFile(p.stderr)
	return string(b)
}

// stop interrupts the bridge (killing it if it has not ended in 5 s) and
// waits for it.
func (p *bridgeProcess) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	t := time.AfterFunc(5*time.Second, func() { p.cmd.Process.Kill() })
	p.cmd.Wait()
	t.Stop()
}

func measureBridgeProcess(b *testing.B, bin string) processFigures {
	b.Helper()
	var f processFigures
	dev := startEchoDev(b)
	p := startBridgeProcess(b, bin, dev.Path)
	pid := p.cmd.Process.Pid

	idle, err := settledRSS(pid)
	if err != nil {
		b.Fatal(err)
	}
	f.rssIdle = float64(idle)

	obs := connectReaders(b, dev, p.url, observers, true)
	busy, err := settledRSS(pid)
	if err != nil {
		b.Fatal(err)
	}
	f.perObserver = float64(busy-idle) / observers
	f.cpu100PerMB, err = floodCPU(p, dev, obs, observersFloodMB<<20)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range obs {
		r.conn.Close()
	}
	waitMembers(b, p.url, 0)

	rd := connectReaders(b, dev, p.url, 1, false)
	f.cpuPerMB, err = floodCPU(p, dev, rd, processFloodMB<<20)
	if err != nil {
		b.Fatal(err)
	}

	const n = processFloodMB << 20
	base, err := headCPU(n)
	if err != nil {
		b.Fatal(err)
	}
	f.baseCPUPerMB = base / (n / 1e6)
	return f
}

// floodCPU floods n bytes that every reader must receive and returns the
// bridge process's CPU-seconds per MB (1e6 bytes) of board output.
func floodCPU(p *bridgeProcess, dev *echodev.Device, readers []*frameReader, n int64) (float64, error) {
	pid := p.cmd.Process.Pid
	before, err := cpuTicks(pid)
	if err != nil {
		return 0, err
	}
	errc := make(chan error, 1)
	go func() { errc <- dev.Flood(n) }()
	if err := readEach(readers, n); err != nil {
		return 0, fmt.Errorf("%w; bridge log:\n%s", err, p.logs())
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	after, err := cpuTicks(pid)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / clockTicks / (float64(n) / 1e6), nil
}

// headCPU returns the CPU-seconds `head -c n` spends reading n flooded
// bytes from a fresh echo device's pseudo-terminal.
func headCPU(n int64) (float64, error) {
	dev, err := echodev.Start()
	if err != nil {
		return 0, err
	}
	defer dev.Close()
	cmd := exec.Command("head", "-c", fmt.Sprint(n), dev.Path)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- dev.Flood(n) }()
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("head: %w", err)
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	st := cmd.ProcessState
	return (st.UserTime() + st.SystemTime()).Seconds(), nil
}
