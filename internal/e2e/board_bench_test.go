//go:build linux

package e2e

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/protocol"
	"webrepl/protocol/remote"
	"webrepl/transport"
)

// Transfers through the raw REPL of a real MicroPython (the WebAssembly
// port, package mpboard) behind a pseudo-terminal throttled like a UART
// at 115200 baud 8N1: 11520 bytes/s each way. The board has no raw-paste
// (code goes in plain raw mode, 256 bytes every 10 ms) and has the deflate
// module.
//
// Each operation moves 64 KiB and takes 3 to 15 s, so run them once:
//
//	go test -run '^$' -bench BoardTransfer -benchtime 1x ./internal/e2e/
//
// Each reports "B/s" (file bytes per second), "line-fraction" (B/s over
// the line rate, 11520) and, for ours, "x-baseline" (its B/s over the
// baseline's for the same direction and file, measured just before in the
// same run). The baseline is mpremote's way: one exec per 256-byte chunk,
// as the repr of the bytes, for put (`w(b'...')`) and get (`r(256)`
// evaluated). Ours is remote.Board: 8 KiB chunks of base64, deflated
// when that makes them smaller, and, for put, the rename and the SHA-256
// check on the board. What a Board does once (entering the raw REPL,
// probing the board) is done before the timer starts.

// lineRate is 115200 baud 8N1 in bytes per second.
const lineRate = 115200 / 10

func BenchmarkBoardTransfer(b *testing.B) {
	random := make([]byte, 64<<10)
	rand.Read(random)
	files := []struct {
		name string
		data []byte
	}{
		{"incompressible-64KiB", random},
		{"python-64KiB", pythonSource(64<<10, 1)},
	}
	baseline := map[string]float64{} // B/s of the baseline, by direction/file
	for _, dir := range []string{"put", "get"} {
		for _, f := range files {
			for _, impl := range []string{"baseline", "ours"} {
				b.Run(dir+"/"+f.name+"/"+impl, func(b *testing.B) {
					mb := mpboardtest.Start(b, &mpboard.Options{Baud: 115200})
					rw, err := transport.OpenStream(context.Background(), mb.Path, &transport.StreamOptions{Baud: 115200})
					if err != nil {
						b.Fatal(err)
					}
					var op func() error
					if impl == "ours" {
						op = oursOp(b, rw, dir, f.data)
					} else {
						op = baselineOp(b, rw, dir, f.data)
					}
					if dir == "get" {
						writeBoardFile(b, mb.FS(), "/bench.bin", f.data)
					}
					b.ResetTimer()
					for b.Loop() {
						if err := op(); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					if dir == "put" {
						if got := readBoardFile(b, mb.FS(), "/bench.bin"); !bytes.Equal(got, f.data) {
							b.Fatalf("the board holds %d other bytes", len(got))
						}
					}
					bps := float64(len(f.data)) * float64(b.N) / b.Elapsed().Seconds()
					b.ReportMetric(bps, "B/s")
					b.ReportMetric(bps/lineRate, "line-fraction")
					key := dir + "/" + f.name
					if impl == "baseline" {
						baseline[key] = bps
					} else if base := baseline[key]; base > 0 {
						b.ReportMetric(bps/base, "x-baseline")
					}
				})
			}
		}
	}
}

// oursOp returns a put or get of data through a remote.Board on rw, whose
// raw REPL is entered and deflate probed already. For get the op checks
// what came.
func oursOp(b *testing.B, rw io.ReadWriteCloser, dir string, data []byte) func() error {
	board := remote.NewRaw(rw, nil)
	b.Cleanup(func() { board.Close() })
	ctx := context.Background()
	// A transfer of one byte does what a Board does once.
	if err := board.Put(ctx, "/warm", strings.NewReader("w"), 1, nil); err != nil {
		b.Fatal(err)
	}
	if dir == "put" {
		return func() error {
			return board.Put(ctx, "/bench.bin", bytes.NewReader(data), int64(len(data)), nil)
		}
	}
	var got bytes.Buffer
	return func() error {
		got.Reset()
		if _, err := board.Get(ctx, "/bench.bin", &got); err != nil {
			return err
		}
		if !bytes.Equal(got.Bytes(), data) {
			return fmt.Errorf("got %d other bytes", got.Len())
		}
		return nil
	}
}

// baselineOp returns a put or get of data the way mpremote does it
// (transport.py, fs_writefile and fs_readfile), on a protocol.Raw with its
// defaults: plain raw mode as mpremote falls back to, 256 bytes every
// 10 ms.
func baselineOp(b *testing.B, rw io.ReadWriteCloser, dir string, data []byte) func() error {
	ctx := context.Background()
	r, err := protocol.EnterRaw(ctx, rw, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		r.Exit(ctx)
		rw.Close()
	})
	const chunk = 256
	if dir == "put" {
		return func() error {
			if _, err := r.ExecCapture(ctx, []byte("f=open('/bench.bin','wb')\nw=f.write")); err != nil {
				return err
			}
			for p := data; len(p) > 0; p = p[min(chunk, len(p)):] {
				if _, err := r.ExecCapture(ctx, []byte("w("+pyRepr(p[:min(chunk, len(p))])+")")); err != nil {
					return err
				}
			}
			_, err := r.ExecCapture(ctx, []byte("f.close()"))
			return err
		}
	}
	var got []byte
	return func() error {
		if _, err := r.ExecCapture(ctx, []byte("f=open('/bench.bin','rb')\nr=f.read")); err != nil {
			return err
		}
		got = got[:0]
		for {
			out, err := r.Eval(ctx, "r("+strconv.Itoa(chunk)+")")
			if err != nil {
				return err
			}
			p, err := parseBytesRepr(string(out))
			if err != nil {
				return err
			}
			if len(p) == 0 {
				break
			}
			got = append(got, p...)
		}
		if _, err := r.ExecCapture(ctx, []byte("f.close()")); err != nil {
			return err
		}
		if !bytes.Equal(got, data) {
			return fmt.Errorf("got %d other bytes", len(got))
		}
		return nil
	}
}

// pyRepr is Python's repr of bytes, as mpremote sends them.
func pyRepr(p []byte) string {
	q := byte('\'')
	if bytes.IndexByte(p, '\'') >= 0 && bytes.IndexByte(p, '"') < 0 {
		q = '"'
	}
	var sb strings.Builder
	sb.WriteByte('b')
	sb.WriteByte(q)
	for _, c := range p {
		switch {
		case c == q || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c == '\n':
			sb.WriteString(`\n`)
		case c == '\r':
			sb.WriteString(`\r`)
		case c == '\t':
			sb.WriteString(`\t`)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte(q)
	return sb.String()
}

// parseBytesRepr parses what pyRepr makes (and MicroPython prints), as
// mpremote's ast.literal_eval does.
func parseBytesRepr(s string) ([]byte, error) {
	if len(s) < 3 || s[0] != 'b' || (s[1] != '\'' && s[1] != '"') || s[len(s)-1] != s[1] {
		return nil, fmt.Errorf("not a bytes repr: %.40q", s)
	}
	s = s[2 : len(s)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i++; i >= len(s) {
			return nil, fmt.Errorf("bytes repr ends in a backslash")
		}
		switch s[i] {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, err
			}
			out = append(out, byte(v))
			i += 2
		default:
			out = append(out, s[i])
		}
	}
	return out, nil
}

// writeBoardFile puts data in the board's file name through its file
// channel, not the line.
func writeBoardFile(b *testing.B, fsys *mpboard.FS, name string, data []byte) {
	pf, err := fsys.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pf.Write(data); err != nil {
		pf.Abort()
		b.Fatal(err)
	}
	if err := pf.Commit(); err != nil {
		b.Fatal(err)
	}
}

// readBoardFile reads the board's file name through its file channel.
func readBoardFile(b *testing.B, fsys *mpboard.FS, name string) []byte {
	f, err := fsys.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// pythonSource returns size bytes of MicroPython source made from
// templates: drivers, tasks, constants, properties, comments, with names,
// numbers and prose drawn from seed. Like real source it deflates about
// 3.5 to 4 times as a whole, about 3 times in 8 KiB chunks, and about
// 2.4 times with the board's own compressor (static Huffman codes, a
// 4 KiB window).
func pythonSource(size int, seed uint64) []byte {
	r := mrand.New(mrand.NewPCG(seed, 1))
	pick := func(l []string) string { return l[r.IntN(len(l))] }
	title := func(s string) string { return strings.ToUpper(s[:1]) + s[1:] }
	var b bytes.Buffer
	b.WriteString("# Generated MicroPython source for transfer benchmarks.\nimport asyncio\nimport machine\nimport struct\nimport time\nfrom micropython import const\nimport logging as log\n\n")
	for b.Len() < size {
		a, bb, c, v := pick(srcWords), pick(srcWords), pick(srcWords), pick(srcVerbs)
		b.WriteString(strings.NewReplacer(
			"{a}", a, "{b}", bb, "{c}", c, "{d}", pick(srcWords), "{e}", pick(srcWords), "{f}", pick(srcWords),
			"{A}", title(a), "{B}", title(bb), "{C}", title(c),
			"{v}", v, "{V}", title(v), "{v2}", pick(srcVerbs),
			"{n}", fmt.Sprint(r.IntN(2000)), "{n2}", fmt.Sprint(r.IntN(65536)), "{m}", fmt.Sprint(r.IntN(256)),
			"{k}", fmt.Sprint(1+r.IntN(100)), "{s}", fmt.Sprint(r.IntN(32)), "{s2}", fmt.Sprint(r.IntN(2)),
			"{p1}", fmt.Sprint(r.IntN(40)), "{p2}", fmt.Sprint(r.IntN(40)),
			"{h}", fmt.Sprintf("%02x", r.IntN(256)), "{H}", fmt.Sprintf("%04X", r.IntN(65536)),
			"{fmt}", pick([]string{"hhh", "HH", "BBH", "i", "3h"}), "{rw}", pick([]string{"r", "rb"}),
		).Replace(pick(srcTemplates)))
		if r.IntN(3) == 0 {
			b.WriteString(strings.Repeat("    ", r.IntN(3)) + "#")
			for range 5 + r.IntN(10) {
				switch {
				case r.IntN(2) == 0:
					b.WriteString(" " + pick(srcFill))
				case r.IntN(3) == 0:
					b.WriteString(" " + pick(srcVerbs))
				default:
					b.WriteString(" " + pick(srcWords))
				}
			}
			b.WriteString(".\n")
		}
	}
	return b.Bytes()[:size]
}

var (
	srcWords = strings.Fields(`sensor led pin buf timeout count value temp humidity uart i2c spi addr
		reg data state button motor speed angle level sample rate frame packet wifi net host port
		retry delay config mode channel pixel color display width height offset index total limit
		reading voltage current power battery clock alarm queue event task lock timer scale gain
		filter window average peak threshold cursor line row col page font glyph bitmap palette
		brightness duty freq pwm adc dac servo relay fan pump valve flow pressure altitude heading
		accel gyro mag baud parity status error code reply request header payload checksum crc key
		token session socket client server topic message record file path name size block sector
		flash cache entry node tree parent child weight bias step phase cycle`)
	srcVerbs = strings.Fields(`read write send receive update reset start stop check parse format load
		save open close enable disable measure convert apply clear flush poll wait scan connect
		handle decode encode compute`)
	srcFill = strings.Fields(`the a of to when if it is not we then so this that once after before
		every only must may with on at for and or but its each new old first last next`)
	srcTemplates = []string{
		"def {v}_{a}({b}, {c}={n}):\n    \"\"\"{V} the {a} from {b}, at most {c} at a time.\"\"\"\n    if {b} is None:\n        return {m}\n    {d} = ({b} * {c}) // {k}\n    if {d} > {n2}:\n        {d} = {n2}\n    return {d}\n\n",
		"class {A}{B}:\n    \"\"\"Driver for the {a} {b} on {c}.\"\"\"\n\n    def __init__(self, {c}, {d}={n}):\n        self._{c} = {c}\n        self._{d} = {d}\n        self._{e} = bytearray({m})\n        self._{f} = 0\n\n",
		"    def {v}_{a}(self):\n        self._{f} += 1\n        return self._{c}.read(self._{d})\n\n",
		"    def {v}(self, {e}):\n        if not {e}:\n            raise ValueError(\"{e} must not be empty\")\n        self._{b}[0] = {e} & 0x{h}\n        self._{c}.write(self._{b})\n\n",
		"async def {v}_{a}_task({b}):\n    while True:\n        {c} = await {b}.{v2}()\n        if {c} is not None:\n            print(\"{a}:\", {c})\n        await asyncio.sleep_ms({n})\n\n",
		"_{A}_{B} = const({n})\n_{A}_{C} = const(0x{H})\n",
		"def {v}_{a}({b}):\n    {c} = []\n    for i in range({n}):\n        {d} = {b}[i] if i < len({b}) else 0\n        {c}.append(({d} >> {s}) & 0xFF)\n    return bytes({c})\n\n",
		"    def {v}_{a}(self):\n        try:\n            {b} = self._{c}.readfrom_mem(self._addr, 0x{h}, {s})\n        except OSError as e:\n            log.warning(\"{v} {a} failed: %s\", e)\n            return None\n        return struct.unpack(\"<{fmt}\", {b})\n\n",
		"{a} = machine.Pin({s}, machine.Pin.OUT)\n{b} = machine.I2C({s2}, scl=machine.Pin({p1}), sda=machine.Pin({p2}), freq={n}000)\n",
		"    # {V} the {a} before the {b} is {v2}ed: the {c} needs {n} ms to settle.\n",
		"def main():\n    {a} = {A}{B}({b})\n    {c} = time.ticks_ms()\n    while True:\n        {d} = {a}.{v}_{e}()\n        if time.ticks_diff(time.ticks_ms(), {c}) > {n}:\n            {c} = time.ticks_ms()\n            print(\"{d}=%d {e}=%d\" % ({d}, {a}.{f}))\n        time.sleep_ms({s})\n\n",
		"    @property\n    def {a}(self):\n        return self._{a}\n\n    @{a}.setter\n    def {a}(self, value):\n        if not {k} <= value <= {n}:\n            raise ValueError(\"{a} out of range\")\n        self._{a} = value\n\n",
		"{A}_{B}_TABLE = ({n}, {m}, {n2}, {k}, {s}, {p1}, {p2})\n",
		"def {v}_{a}_{b}({c}, {d}):\n    with open({c}, \"{rw}\") as f:\n        for line in f:\n            {e}, _, {f} = line.strip().partition(\"=\")\n            if {e} == {d}:\n                return {f}\n    raise KeyError({d})\n\n",
		"        elif {a} == _{A}_{B}:\n            self._{c} = {a}\n            self.{v}_{b}({n})\n",
		"    if {a}.{v}() and {b} < {n}:\n        {b} += {s}\n        {c}[{b} % {k}] = {a}.value()\n",
	}
)

// TestPythonSourceRatio keeps the benchmark's source realistic: it must
// deflate (as a whole, with Go's best compression) between 3.5 and 4.2
// times, as real MicroPython source does, not degenerately.
func TestPythonSourceRatio(t *testing.T) {
	src := pythonSource(64<<10, 1)
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	w.Write(src)
	w.Close()
	if ratio := float64(len(src)) / float64(out.Len()); ratio < 3.5 || ratio > 4.2 {
		t.Errorf("the source deflates %.2f times, want 3.5 to 4.2", ratio)
	}
}
