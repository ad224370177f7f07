//go:build linux

package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"webrepl/internal/emulator"
	"webrepl/internal/emulator/emutest"
	"webrepl/internal/mpboard"
	"webrepl/internal/mpboard/mpboardtest"
	"webrepl/protocol"
	"webrepl/transport"
)

// corruptWrites makes the board's writes to a put's temporary file flip a
// bit of every write: it shadows open() in the globals the raw REPL runs
// code in. Other files, and reads, are left alone.
const corruptWrites = `_corrupt_open=open
class _Corrupt:
    def __init__(s,f): s.f=f
    def write(s,b):
        b=bytearray(b)
        if b: b[0]^=1
        return s.f.write(b)
    def close(s): s.f.close()
def open(p,m='r'):
    f=_corrupt_open(p,m)
    return _Corrupt(f) if p.endswith('.webrepl-tmp') and 'w' in m else f`

// noHashlibSha256 hides hashlib.sha256, as on firmware built without it.
const noHashlibSha256 = "import sys\nclass _H:\n    pass\nsys.modules['hashlib']=_H()"

// TestPutVerifiesBeforeRename puts over an existing file on a board whose
// writes corrupt the data: the check must catch it before the rename, so
// that the old file stays whole and the temporary file goes. With
// NoVerify the corrupt file does replace the old one, which shows that
// the stand-in corrupts rather than fails.
func TestPutVerifiesBeforeRename(t *testing.T) {
	old := []byte("the old content, which must survive\n")
	data := pythonSource(5000, 4)
	for _, tc := range []struct {
		name    string
		setup   []string
		opts    Options
		wantErr bool
	}{
		{name: "hashlib on the board", setup: []string{corruptWrites}, wantErr: true},
		{name: "no sha256 in hashlib", setup: []string{corruptWrites, noHashlibSha256}, wantErr: true},
		{name: "small chunks", setup: []string{corruptWrites}, opts: Options{ChunkSize: 1024}, wantErr: true},
		{name: "NoVerify", setup: []string{corruptWrites}, opts: Options{NoVerify: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			b := openBoard(t, &tc.opts)
			if err := b.Put(ctx, "/f.py", bytes.NewReader(old), int64(len(old)), nil); err != nil {
				t.Fatal(err)
			}
			for _, code := range tc.setup {
				if _, err := b.exec(ctx, code); err != nil {
					t.Fatal(err)
				}
			}
			err := b.Put(ctx, "/f.py", bytes.NewReader(data), int64(len(data)), nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("put of corrupted data: %v, want an error: %v", err, tc.wantErr)
			}
			var got bytes.Buffer
			if _, err := b.Get(ctx, "/f.py", &got); err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantErr && !bytes.Equal(got.Bytes(), old):
				t.Errorf("the failed put changed the target: %d bytes, want the %d old ones", got.Len(), len(old))
			case !tc.wantErr && (got.Len() != len(data) || bytes.Equal(got.Bytes(), data)):
				t.Errorf("unverified put: the target has %d bytes, equal to the source: %v; want the %d corrupted ones",
					got.Len(), bytes.Equal(got.Bytes(), data), len(data))
			}
			noTemporary(ctx, t, b, "/")
		})
	}
}

// noTemporary fails the test if dir holds a temporary file of a put.
func noTemporary(ctx context.Context, t *testing.T, b *Board, dir string) {
	t.Helper()
	es, err := b.List(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if strings.Contains(e.Name, "webrepl-tmp") {
			t.Errorf("left behind: %s", e.Name)
		}
	}
}

// TestPutOverWebREPLVerifiesBeforeRename is TestPutVerifiesBeforeRename
// over WebREPL: the data goes through the file protocol to a device whose
// file system corrupts it, the check and the rename through the raw REPL
// in the terminal channel.
func TestPutOverWebREPLVerifiesBeforeRename(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	term := mpboardtest.Open(t, nil)
	old := []byte("the old content, which must survive\n")
	writeFile(t, term.FS(), "/f.py", old)
	dev := emutest.StartTCP(t, emulator.Options{
		Password: "secret",
		FS:       corruptFS{term.FS()},
		Terminal: term,
		Extended: true,
	})
	conn, err := transport.Dial(ctx, "ws://"+dev.Addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := protocol.Login(ctx, conn, "secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := NewWebREPL(c, &Options{Raw: &protocol.RawOptions{ChunkDelay: -1}, Logf: t.Logf})
	t.Cleanup(func() { b.Close() })

	data := pythonSource(5000, 5)
	if err := b.Put(ctx, "/f.py", bytes.NewReader(data), int64(len(data)), nil); err == nil {
		t.Fatal("a put of corrupted data succeeded")
	}
	got := readFile(t, term.FS(), "/f.py")
	if !bytes.Equal(got, old) {
		t.Errorf("the failed put changed the target: %d bytes, want the %d old ones", len(got), len(old))
	}
	if _, err := term.FS().Stat("/" + tmpName("f.py")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary file: %v, want it gone", err)
	}
	noTemporary(ctx, t, b, "/")
}

// corruptFS is a board's file system whose PUTs flip a bit of every write.
type corruptFS struct{ *mpboard.FS }

func (f corruptFS) Create(name string) (protocol.PendingFile, error) {
	pf, err := f.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return corruptFile{pf}, nil
}

type corruptFile struct{ protocol.PendingFile }

func (f corruptFile) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	q := bytes.Clone(p)
	q[0] ^= 1
	return f.PendingFile.Write(q)
}

// writeFile stores data as name through fsys, bypassing the REPL.
func writeFile(t *testing.T, fsys protocol.FS, name string, data []byte) {
	t.Helper()
	pf, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pf.Write(data); err != nil {
		pf.Abort()
		t.Fatal(err)
	}
	if err := pf.Commit(); err != nil {
		t.Fatal(err)
	}
}

// readFile reads name through fsys, bypassing the REPL.
func readFile(t *testing.T, fsys protocol.FS, name string) []byte {
	t.Helper()
	r, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
