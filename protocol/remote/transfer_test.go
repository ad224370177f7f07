//go:build linux

package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/protocol"
	"webrepl/transport"
)

// transferFiles are the files every transfer mode must carry unchanged.
func transferFiles() []struct {
	name string
	data []byte
} {
	random := make([]byte, 64<<10)
	rand.Read(random)
	every := make([]byte, 0, 256*100)
	for range 100 {
		for c := range 256 {
			every = append(every, byte(c))
		}
	}
	return []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0xff}},
		{"every byte value x100", every},
		{"64 KiB random", random},
		{"64 KiB python", pythonSource(64<<10, 1)},
	}
}

// Board-side stand-ins for modules (deflate, time, gc), installed in
// sys.modules before the first transfer, to make the board one of another
// kind.
const (
	// noDeflate: firmware built without the module.
	noDeflate = "import sys\nsys.modules['deflate']=None"
	// inflateOnly: firmware built without compression, whose DeflateIO
	// objects have no write method.
	inflateOnly = `import sys,deflate as _D
class _I:
    def __init__(s,*a): s._d=_D.DeflateIO(*a)
    def read(s,*a): return s._d.read(*a)
    def readinto(s,b): return s._d.readinto(b)
class _M:
    RAW=_D.RAW
    DeflateIO=_I
sys.modules['deflate']=_M`
	// slowBoard: a board on which everything takes 10 s.
	slowBoard = `import sys,time as _T
class _S:
    ticks_ms=_T.ticks_ms
    def ticks_diff(a,b): return 10000
sys.modules['time']=_S`
	// littleMemory: a board with 20000 bytes free.
	littleMemory = `import sys
class _G:
    def collect(): pass
    def mem_free(): return 20000
sys.modules['gc']=_G`
)

// TestTransferModes puts and gets files with compression on, off, and on
// boards whose deflate module is missing or cannot compress: every mode
// carries every file unchanged, and the probe finds what the board can do.
func TestTransferModes(t *testing.T) {
	files := transferFiles()
	for _, tc := range []struct {
		name  string
		setup string // run before the first transfer
		opts  Options
		want  xfer
	}{
		{name: "compressed", want: xfer{chunk: DefaultChunkSize, put: true, get: true}},
		{name: "NoCompress", opts: Options{NoCompress: true}, want: xfer{chunk: DefaultChunkSize}},
		{name: "no deflate module", setup: noDeflate, want: xfer{chunk: DefaultChunkSize}},
		{name: "inflate only", setup: inflateOnly, want: xfer{chunk: DefaultChunkSize, put: true}},
		{name: "small chunks", opts: Options{ChunkSize: 1000}, want: xfer{chunk: 1000, put: true, get: true}},
		{name: "little memory", setup: littleMemory, want: xfer{chunk: 2048, put: true, get: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			b := openBoard(t, &tc.opts)
			if tc.setup != "" {
				if _, err := b.exec(ctx, tc.setup); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range files {
				p := "/" + strings.ReplaceAll(f.name, " ", "_")
				if err := b.Put(ctx, p, bytes.NewReader(f.data), int64(len(f.data)), nil); err != nil {
					t.Fatalf("%s: put: %v", f.name, err)
				}
				var got bytes.Buffer
				n, err := b.Get(ctx, p, &got)
				if err != nil {
					t.Fatalf("%s: get: %v", f.name, err)
				}
				if n != int64(len(f.data)) || !bytes.Equal(got.Bytes(), f.data) {
					t.Fatalf("%s: got %d bytes back (%d counted), want the %d put", f.name, got.Len(), n, len(f.data))
				}
			}
			if b.xfer != tc.want {
				t.Errorf("probe found %+v, want %+v", b.xfer, tc.want)
			}
		})
	}
}

// TestCompressOnlyWhenItPays checks what goes over the line, chunk by
// chunk: the host deflates every chunk that shrinks so; the board deflates
// until a chunk does not shrink, or takes it too long.
func TestCompressOnlyWhenItPays(t *testing.T) {
	random := make([]byte, 4096)
	rand.Read(random)
	src := pythonSource(3*4096, 2)
	for _, tc := range []struct {
		name     string
		setup    string
		chunks   [][]byte
		put, get string // per chunk: z compressed, p plain
	}{
		{name: "source then random", chunks: [][]byte{src[:4096], random}, put: "zp", get: "zp"},
		{name: "random then source", chunks: [][]byte{random, src[:4096]}, put: "pz", get: "pp"},
		{name: "source", chunks: [][]byte{src}, put: "zzz", get: "zzz"},
		{name: "slow board", setup: slowBoard, chunks: [][]byte{src}, put: "zzz", get: "zpp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var rec recorder
			b := openBoardWith(t, &Options{ChunkSize: 4096}, func(rw io.ReadWriteCloser) io.ReadWriteCloser {
				rec.ReadWriteCloser = rw
				return &rec
			})
			if tc.setup != "" {
				if _, err := b.exec(ctx, tc.setup); err != nil {
					t.Fatal(err)
				}
			}
			data := bytes.Join(tc.chunks, nil)
			if err := b.Put(ctx, "/f", bytes.NewReader(data), int64(len(data)), nil); err != nil {
				t.Fatal(err)
			}
			var put strings.Builder
			for _, l := range strings.Split(rec.take(&rec.written), "\n") {
				l = strings.TrimLeft(l, "\x04") // the end of the previous exec
				switch {
				case strings.HasPrefix(l, "_z(b'"):
					put.WriteByte('z')
				case strings.HasPrefix(l, "_w(_d(b'"):
					put.WriteByte('p')
				}
			}
			if put.String() != tc.put {
				t.Errorf("put sent chunks %q, want %q (z compressed, p plain)", put.String(), tc.put)
			}
			var got bytes.Buffer
			if _, err := b.Get(ctx, "/f", &got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), data) {
				t.Fatal("get changed the file")
			}
			var get strings.Builder
			for _, l := range strings.Split(rec.take(&rec.read), "\n") {
				if l = strings.TrimPrefix(strings.Trim(l, "\r\x04>"), "OK"); len(l) > 100 {
					get.WriteByte("pz"[boolInt(l[0] == zMark)])
				}
			}
			if get.String() != tc.get {
				t.Errorf("get sent chunks %q, want %q (z compressed, p plain)", get.String(), tc.get)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPutExecs pins the cost of a put in round trips: one exec per chunk,
// the first also opening the file and the last also closing it, and one
// that checks it and renames it.
func TestPutExecs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var rec recorder
	b := openBoardWith(t, &Options{ChunkSize: 1000}, func(rw io.ReadWriteCloser) io.ReadWriteCloser {
		rec.ReadWriteCloser = rw
		return &rec
	})
	if err := b.Put(ctx, "/warm", strings.NewReader("w"), 1, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size, execs int
	}{
		{0, 2},
		{100, 2},
		{1000, 2},
		{2500, 4},
	} {
		rec.take(&rec.written)
		data := pythonSource(tc.size, 3)
		if err := b.Put(ctx, "/f", bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
		if got := strings.Count(rec.take(&rec.written), "\x04"); got != tc.execs {
			t.Errorf("put of %d bytes: %d execs, want %d", tc.size, got, tc.execs)
		}
	}
}

// TestPutSourceFails checks that a put whose source fails midway, or whose
// ctx is cancelled midway, fails with that error, leaves neither the file
// nor the temporary one, and leaves the Board usable.
func TestPutSourceFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := openBoard(t, &Options{ChunkSize: 1000})
	boom := errors.New("boom")
	src := io.MultiReader(bytes.NewReader(make([]byte, 1500)), iotest.ErrReader(boom))
	if err := b.Put(ctx, "/f", src, 3000, nil); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
	if err := b.Put(ctx, "/g", strings.NewReader("short"), 10, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short source: got %v, want %v", err, io.ErrUnexpectedEOF)
	}
	cctx, ccancel := context.WithCancel(ctx)
	err := b.Put(cctx, "/f", bytes.NewReader(make([]byte, 3000)), 3000, func(int64) { ccancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled put: got %v, want %v", err, context.Canceled)
	}
	es, err := b.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Name == "f" || e.Name == "g" || strings.Contains(e.Name, "webrepl-tmp") {
			t.Errorf("left behind: %s", e.Name)
		}
	}
	if err := b.Put(ctx, "/f", strings.NewReader("ok"), 2, nil); err != nil {
		t.Fatal(err)
	}
}

// recorder keeps what goes through a stream.
type recorder struct {
	io.ReadWriteCloser
	mu            sync.Mutex
	read, written bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.ReadWriteCloser.Read(p)
	r.mu.Lock()
	r.read.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.written.Write(p)
	r.mu.Unlock()
	return r.ReadWriteCloser.Write(p)
}

// take returns what buf holds and empties it.
func (r *recorder) take(buf *bytes.Buffer) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := buf.String()
	buf.Reset()
	return s
}

// openBoard starts a board on a pseudo-terminal, unthrottled, and opens a
// Board on it, closed when the test ends. The raw REPL sends code without
// pauses: the harness has flow control.
func openBoard(t *testing.T, opts *Options) *Board {
	return openBoardWith(t, opts, nil)
}

// openBoardWith is openBoard with the stream passed through wrap.
func openBoardWith(t *testing.T, opts *Options, wrap func(io.ReadWriteCloser) io.ReadWriteCloser) *Board {
	t.Helper()
	mb := mpboardtest.Start(t, nil)
	rw, err := transport.OpenStream(context.Background(), mb.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		rw = wrap(rw)
	}
	o := *opts
	if o.Raw == nil {
		o.Raw = &protocol.RawOptions{ChunkDelay: -1}
	}
	o.Logf = t.Logf
	b := NewRaw(rw, &o)
	t.Cleanup(func() { b.Close() })
	return b
}

// pythonSource returns size bytes of MicroPython-like source: functions,
// classes, constants and comments from templates, with names and numbers
// drawn from seed. It deflates about 4.5 times as a whole. (The benchmark
// in internal/e2e has a more varied generator.)
func pythonSource(size int, seed uint64) []byte {
	r := mrand.New(mrand.NewPCG(seed, 2))
	pick := func(l []string) string { return l[r.IntN(len(l))] }
	var b bytes.Buffer
	b.WriteString("import machine\nimport time\nfrom micropython import const\n\n")
	for b.Len() < size {
		a, c, v := pick(srcWords), pick(srcWords), pick(srcVerbs)
		b.WriteString(strings.NewReplacer(
			"{a}", a, "{c}", c, "{d}", pick(srcWords), "{v}", v,
			"{A}", strings.ToUpper(a[:1])+a[1:], "{C}", strings.ToUpper(c),
			"{n}", fmt.Sprint(r.IntN(2000)), "{k}", fmt.Sprint(1+r.IntN(100)), "{h}", fmt.Sprintf("%02x", r.IntN(256)),
		).Replace(pick(srcTemplates)))
		if r.IntN(3) == 0 {
			b.WriteString("# ")
			for range 5 + r.IntN(10) {
				b.WriteString(pick(srcWords) + " ")
			}
			b.WriteString("\n")
		}
	}
	return b.Bytes()[:size]
}

var (
	srcWords     = strings.Fields("sensor led pin buf timeout count value temp uart i2c spi addr reg data state button motor speed angle level sample rate frame packet wifi host port retry delay config mode channel pixel color display width height offset index total limit voltage current power battery clock alarm queue event task timer scale gain filter the a of to when if it is not then")
	srcVerbs     = strings.Fields("read write send update reset start stop check parse load save open close enable measure convert apply clear poll scan")
	srcTemplates = []string{
		"def {v}_{a}({c}, {d}={n}):\n    \"\"\"{v} the {a} from {c}.\"\"\"\n    if {c} is None:\n        return {k}\n    {d} = ({c} * {d}) // {k}\n    return {d}\n\n",
		"class {A}:\n    def __init__(self, {c}, {d}={n}):\n        self._{c} = {c}\n        self._{d} = bytearray({k})\n\n    def {v}(self):\n        return self._{c}.read(self._{d})\n\n",
		"_{C} = const(0x{h})\n",
		"def main():\n    {a} = {A}({c})\n    while True:\n        print(\"{d}=%d\" % {a}.{v}())\n        time.sleep_ms({n})\n\n",
		"    try:\n        {a} = self._{c}.readfrom_mem({k}, 0x{h}, {n})\n    except OSError as e:\n        print(\"{v} failed:\", e)\n",
		"{a} = machine.Pin({k}, machine.Pin.OUT)\n",
	}
)

// TestSha256 hashes on the board with hashlib and, on a board without it,
// fetches the file and hashes here: the same digest either way.
func TestSha256(t *testing.T) {
	data := pythonSource(10000, 2)
	want := fmt.Sprintf("%x", sha256.Sum256(data))
	for _, tc := range []struct{ name, setup string }{
		{"hashlib on the board", ""},
		{"no sha256 in hashlib", "import sys\nclass _H:\n    pass\nsys.modules['hashlib']=_H()"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b := openBoard(t, &Options{NoVerify: true})
			if err := b.Put(ctx, "/h.py", bytes.NewReader(data), int64(len(data)), nil); err != nil {
				t.Fatal(err)
			}
			if tc.setup != "" {
				if _, err := b.exec(ctx, tc.setup); err != nil {
					t.Fatal(err)
				}
				if _, err := b.exec(ctx, "import hashlib\nhashlib.sha256"); err == nil {
					t.Fatal("the stand-in did not hide hashlib.sha256")
				}
			}
			got, err := b.Sha256(ctx, "/h.py")
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("sha256 %s, want %s", got, want)
			}
		})
	}
}
