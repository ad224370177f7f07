package remote

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"webrepl/protocol"
)

// rawExitWait bounds leaving the raw REPL at Close.
const rawExitWait = 2 * time.Second

// Entry is one file or directory on the board.
type Entry struct {
	Name  string `json:"name"` // base name (List) or path relative to the walk's root (Tree)
	Size  int64  `json:"size"`
	IsDir bool   `json:"dir"`
}

// py quotes s as a Python string literal. Go's quoting is valid Python for
// every escape it produces (\", \\, \n, \t, \xNN, \uNNNN, \UNNNNNNNN).
func py(s string) string { return strconv.Quote(s) }

// wrap gives an error the operation and path, once.
func wrap(op, p string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("webrepl: %s %s: %w", op, p, trimPrefixErr(err))
}

type prefixless struct{ err error }

func (e prefixless) Error() string { return strings.TrimPrefix(e.err.Error(), "webrepl: ") }
func (e prefixless) Unwrap() error { return e.err }

func trimPrefixErr(err error) error { return prefixless{err} }

// parseEntries reads lines of "TYPE SIZE HEXNAME".
func parseEntries(out []byte) ([]Entry, error) {
	var es []Entry
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("%w: unexpected listing line %q", protocol.ErrProtocol, line)
		}
		typ, err1 := strconv.ParseInt(f[0], 10, 64)
		size, err2 := strconv.ParseInt(f[1], 10, 64)
		name, err3 := hex.DecodeString(f[2])
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, fmt.Errorf("%w: unexpected listing line %q", protocol.ErrProtocol, line)
		}
		es = append(es, Entry{Name: string(name), Size: size, IsDir: typ&0x4000 != 0})
	}
	return es, nil
}

// List returns the entries of the directory p, sorted by name.
func (b *Board) List(ctx context.Context, p string) ([]Entry, error) {
	out, err := b.exec(ctx, `import os,binascii
for e in os.ilistdir(`+py(p)+`):
    s=e[3] if len(e)>3 else 0
    if e[1]&0x4000: s=0
    print(e[1],s,binascii.hexlify(e[0].encode()).decode())`)
	if err != nil {
		return nil, wrap("ls", p, err)
	}
	es, err := parseEntries(out)
	sortEntries(es)
	return es, wrap("ls", p, err)
}

// Tree returns every entry below the directory p, depth first, with names
// relative to p, sorted by name within each directory.
func (b *Board) Tree(ctx context.Context, p string) ([]Entry, error) {
	out, err := b.exec(ctx, `import os,binascii
def _t(d,r):
    l=sorted(os.ilistdir(d),key=lambda e:e[0])
    for e in l:
        n=r+e[0]
        s=e[3] if len(e)>3 else 0
        if e[1]&0x4000:
            print(e[1],0,binascii.hexlify(n.encode()).decode())
            _t((d.rstrip('/') or '')+'/'+e[0],n+'/')
        else:
            print(e[1],s,binascii.hexlify(n.encode()).decode())
_t(`+py(p)+`,'')
del _t`)
	if err != nil {
		return nil, wrap("tree", p, err)
	}
	es, err := parseEntries(out)
	return es, wrap("tree", p, err)
}

// Stat returns the entry for p; its Name is path.Base(p).
func (b *Board) Stat(ctx context.Context, p string) (Entry, error) {
	out, err := b.exec(ctx, "import os\ns=os.stat("+py(p)+")\nprint(s[0],s[6])")
	if err != nil {
		return Entry{}, wrap("stat", p, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return Entry{}, wrap("stat", p, fmt.Errorf("%w: unexpected stat output %q", protocol.ErrProtocol, out))
	}
	mode, _ := strconv.ParseInt(f[0], 10, 64)
	size, _ := strconv.ParseInt(f[1], 10, 64)
	e := Entry{Name: path.Base(p), Size: size, IsDir: mode&0x4000 != 0}
	if e.IsDir {
		e.Size = 0
	}
	return e, nil
}

// Cat writes the file p to w.
func (b *Board) Cat(ctx context.Context, p string, w io.Writer) error {
	_, err := b.Get(ctx, p, w)
	return err
}

// Get copies the board's file p to w and returns the number of bytes.
// Over WebREPL it uses the file protocol; otherwise the file comes through
// the raw REPL, a line per chunk (see Options.ChunkSize: base64, of the
// chunk deflated when the board can and that makes it smaller), decoded
// as the lines arrive.
func (b *Board) Get(ctx context.Context, p string, w io.Writer) (int64, error) {
	if b.web != nil {
		return b.web.Get(ctx, p, w, nil)
	}
	zc, err := b.transferMode(ctx)
	if err != nil {
		return 0, wrap("get", p, err)
	}
	chunk := zc.chunk
	var code strings.Builder
	code.WriteString(pyB2A + "import sys\n_o=sys.stdout.write\n")
	if zc.get {
		code.WriteString(`import deflate,io,time
def _c(b):
 s=io.BytesIO()
 z=deflate.DeflateIO(s,deflate.RAW,` + strconv.Itoa(getWindowBits(chunk)) + `)
 z.write(b)
 z.close()
 return s.getvalue()
`)
	}
	code.WriteString("_f=open(" + py(p) + ",'rb')\ntry:\n")
	if zc.get {
		// _k: go on compressing. A sample of the file decides the first
		// chunk; a chunk that did not shrink, or took the board too long,
		// ends compression for the rest of the file.
		code.WriteString(" _k=len(_c(_f.read(" + strconv.Itoa(getSample) + ")))<" + strconv.Itoa(getSample) + "\n _f.seek(0)\n")
	}
	code.WriteString(" while 1:\n  _b=_f.read(" + strconv.Itoa(chunk) + ")\n  if not _b:break\n")
	if zc.get {
		code.WriteString(`  if _k:
   _t=time.ticks_ms()
   _s=_c(_b)
   _k=len(_s)<len(_b) and time.ticks_diff(time.ticks_ms(),_t)*` + strconv.Itoa(minDeflateRate/1000) + `<=len(_b)
   if len(_s)<len(_b):
    _o('` + string(zMark) + `')
    _b=_s
   _s=None
`)
	}
	code.WriteString("  _o(_e(_b))\n  _b=None\nfinally:\n _f.close()\n")
	dec := &lineDecoder{w: w, max: chunk}
	err = b.Exec(ctx, code.String(), dec)
	if err == nil {
		err = dec.flush()
	}
	return dec.n, wrap("get", p, err)
}

// tmpName is where a put writes before the rename.
func tmpName(p string) string {
	dir, base := path.Split(p)
	return dir + "." + base + ".webrepl-tmp"
}

// Put writes size bytes from r to the board's file p: under a temporary
// name first, which is checked (unless Options.NoVerify) against a SHA-256
// computed on the board and only then renamed over p. Over WebREPL the
// data goes through the file protocol. A put that fails at any step, the
// check included, leaves p as it was and removes the temporary file; when
// ctx is done, that takes one more exec, bounded by 2 s whatever ctx
// says.
func (b *Board) Put(ctx context.Context, p string, r io.Reader, size int64, progress func(done int64)) (err error) {
	defer func() { err = wrap("put", p, err) }()
	if b.web != nil {
		// The check and the rename need the raw REPL: enter it first, so
		// that a device without one (an emulator started without a REPL)
		// gets the file written directly, by its own atomic write.
		if _, err := b.rawREPL(ctx); errors.Is(err, protocol.ErrNoREPL) {
			b.logf("webrepl: put %s: the device has no REPL; writing the file directly, unverified", p)
			return b.web.Put(ctx, p, r, size, progress)
		} else if err != nil {
			return err
		}
	}
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(r, size), h)
	tmp := tmpName(p)
	if b.web != nil {
		err = b.web.Put(ctx, tmp, src, size, progress)
	} else {
		err = b.putRaw(ctx, tmp, src, size, progress)
	}
	if err == nil {
		err = b.commit(ctx, tmp, p, hex.EncodeToString(h.Sum(nil)))
	}
	if err != nil {
		b.abandon(ctx, tmp)
	}
	return err
}

// commit renames the complete temporary file tmp over p, once its SHA-256
// on the board is want (the hex digest of the source); with
// Options.NoVerify, unchecked. It takes one exec: the board hashes tmp
// and renames it only when the digest matches. A board without hashlib
// sends tmp back to be hashed here, and a second exec renames it.
func (b *Board) commit(ctx context.Context, tmp, p, want string) error {
	if b.opts.NoVerify {
		_, err := b.exec(ctx, renameCode(tmp, p))
		return err
	}
	out, err := b.exec(ctx, sha256Code(tmp)+"\nif _s=="+py(want)+":\n"+indent(renameCode(tmp, p)))
	sum := trimLine(out)
	if noHashlib(err) {
		if sum, err = b.hostSha256(ctx, tmp); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if sum == want {
			_, err = b.exec(ctx, renameCode(tmp, p))
		}
	}
	if err != nil {
		return err
	}
	if sum != want {
		return fmt.Errorf("verify: the board's copy has SHA-256 %s, the source %s", sum, want)
	}
	return nil
}

// renameCode moves tmp over p: a plain rename, or, where the filesystem
// refuses to replace a file that way (FAT), a remove and a rename.
func renameCode(tmp, p string) string {
	return "import os\ntry:\n os.rename(" + py(tmp) + "," + py(p) + ")\nexcept OSError:\n os.remove(" + py(p) + ")\n os.rename(" + py(tmp) + "," + py(p) + ")\n"
}

// indent indents every line of the Python code by one space, to nest it
// in a block.
func indent(code string) string {
	return " " + strings.ReplaceAll(strings.TrimRight(code, "\n"), "\n", "\n ") + "\n"
}

// putRaw writes size bytes from src to the board's file tmp through the
// raw REPL, one exec per chunk (see Options.ChunkSize), each deflated
// when the board can inflate and that makes it smaller. Opening the file
// rides along with the first chunk, and closing it with the last: a file
// of one chunk takes one exec.
func (b *Board) putRaw(ctx context.Context, tmp string, src io.Reader, size int64, progress func(int64)) error {
	if size < 0 {
		return fmt.Errorf("negative size %d: %w", size, fs.ErrInvalid)
	}
	zc, err := b.transferMode(ctx)
	if err != nil {
		return err
	}
	chunk := zc.chunk
	begin := pyA2B + "_f=open(" + py(tmp) + ",'wb')\n_w=_f.write\n"
	done := "_f.close()\ndel _f,_w,_d"
	if zc.put {
		begin += `import deflate,io
_m=memoryview(bytearray(1024))
def _z(x):
 x=deflate.DeflateIO(io.BytesIO(_d(x)),deflate.RAW,` + strconv.Itoa(putWindowBits(chunk)) + `)
 while 1:
  n=x.readinto(_m)
  if not n:break
  _w(_m[:n])
`
		done += ",_m,_z"
	}
	done += "\n"
	buf := make([]byte, chunk)
	code := make([]byte, 0, len(begin)+base64.StdEncoding.EncodedLen(len(buf))+len(done)+16)
	var sent int64
	for first := true; first || sent < size; first = false {
		code = code[:0]
		if first {
			code = append(code, begin...)
		}
		n := int(min(int64(len(buf)), size-sent))
		if _, err := io.ReadFull(src, buf[:n]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading the source: %w", err)
		}
		if n > 0 {
			data, head, tail := buf[:n], "_w(_d(b'", "'))\n"
			if zc.put {
				if c := b.z.deflate(data); len(c) < n {
					data, head, tail = c, "_z(b'", "')\n"
				}
			}
			code = append(code, head...)
			code = base64.StdEncoding.AppendEncode(code, data)
			code = append(code, tail...)
		}
		if sent+int64(n) == size {
			code = append(code, done...)
		}
		if _, err := b.exec(ctx, string(code)); err != nil {
			return err
		}
		sent += int64(n)
		if progress != nil && n > 0 {
			progress(sent)
		}
	}
	return nil
}

// abandon cleans up after a failed put: it closes the file putRaw may have
// left open and removes tmp. It runs even when ctx is done (often the
// reason the put failed), bounded by rawExitWait.
func (b *Board) abandon(ctx context.Context, tmp string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rawExitWait)
	defer cancel()
	b.exec(ctx, "try:\n _f.close()\n del _f\nexcept Exception:\n pass\nimport os\ntry:\n os.remove("+py(tmp)+")\nexcept OSError:\n pass")
}

// Sha256 returns the hex SHA-256 of the board's file p, computed on the
// board with hashlib; boards without it send the file and the host hashes.
func (b *Board) Sha256(ctx context.Context, p string) (string, error) {
	out, err := b.exec(ctx, sha256Code(p))
	if noHashlib(err) {
		return b.hostSha256(ctx, p)
	}
	if err != nil {
		return "", wrap("sha256sum", p, err)
	}
	return trimLine(out), nil
}

// sha256Code is Python that hashes the board's file p with hashlib, puts
// the hex digest in _s and prints it.
func sha256Code(p string) string {
	return `import hashlib,binascii
h=hashlib.sha256()
f=open(` + py(p) + `,'rb')
m=bytearray(1024)
v=memoryview(m)
while 1:
    n=f.readinto(m)
    if not n: break
    h.update(v[:n])
f.close()
_s=binascii.hexlify(h.digest()).decode()
print(_s)`
}

// noHashlib reports whether err is sha256Code failing for want of
// hashlib.sha256 on the board.
func noHashlib(err error) bool {
	var ee *protocol.ExecError
	return errors.As(err, &ee) && (ee.Type == "ImportError" || ee.Type == "AttributeError")
}

// hostSha256 fetches the board's file p and returns its hex SHA-256,
// computed here.
func (b *Board) hostSha256(ctx context.Context, p string) (string, error) {
	h := sha256.New()
	if _, err := b.Get(ctx, p, h); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Remove deletes the file p; with recursive, a directory and everything
// below it.
func (b *Board) Remove(ctx context.Context, p string, recursive bool) error {
	code := "import os\nos.remove(" + py(p) + ")"
	if recursive {
		code = `import os
def _r(p):
    if os.stat(p)[0]&0x4000:
        for e in os.ilistdir(p):
            _r(p.rstrip('/')+'/'+e[0])
        os.rmdir(p)
    else:
        os.remove(p)
_r(` + py(p) + `)
del _r`
	}
	_, err := b.exec(ctx, code)
	return wrap("rm", p, err)
}

// Mkdir makes the directory p; with parents, also the missing ones above
// it, and an existing directory is fine.
func (b *Board) Mkdir(ctx context.Context, p string, parents bool) error {
	code := "import os\nos.mkdir(" + py(p) + ")"
	if parents {
		code = `import os
_p=''
for _c in ` + py(p) + `.split('/'):
    if not _c: 
        _p+='/' if not _p else ''
        continue
    _p=(_p.rstrip('/')+'/'+_c) if _p else _c
    try:
        os.mkdir(_p)
    except OSError as e:
        if not os.stat(_p)[0]&0x4000: raise
del _p,_c`
	}
	_, err := b.exec(ctx, code)
	return wrap("mkdir", p, err)
}

// Rmdir removes the empty directory p.
func (b *Board) Rmdir(ctx context.Context, p string) error {
	_, err := b.exec(ctx, "import os\nos.rmdir("+py(p)+")")
	return wrap("rmdir", p, err)
}

// Touch creates p if it does not exist, leaving its contents alone.
func (b *Board) Touch(ctx context.Context, p string) error {
	_, err := b.exec(ctx, "open("+py(p)+",'a').close()")
	return wrap("touch", p, err)
}

// Rename moves from to to.
func (b *Board) Rename(ctx context.Context, from, to string) error {
	_, err := b.exec(ctx, "import os\nos.rename("+py(from)+","+py(to)+")")
	return wrap("mv", from, err)
}

// Usage is a filesystem's size and free space, in bytes.
type Usage struct {
	Path  string `json:"path"`
	Total int64  `json:"total"`
	Free  int64  `json:"free"`
}

// Df returns the size and free space of the filesystem holding p.
func (b *Board) Df(ctx context.Context, p string) (Usage, error) {
	out, err := b.exec(ctx, "import os\ns=os.statvfs("+py(p)+")\nprint(s[1] or s[0],s[2],s[3])")
	if err != nil {
		return Usage{}, wrap("df", p, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return Usage{}, wrap("df", p, fmt.Errorf("%w: unexpected statvfs output %q", protocol.ErrProtocol, out))
	}
	var n [3]int64
	for i := range n {
		n[i], _ = strconv.ParseInt(f[i], 10, 64)
	}
	return Usage{Path: p, Total: n[0] * n[1], Free: n[0] * n[2]}, nil
}

func sortEntries(es []Entry) {
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
}

// IsDir reports whether p is a directory on the board; a missing p is
// (false, nil).
func (b *Board) IsDir(ctx context.Context, p string) (bool, error) {
	e, err := b.Stat(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return e.IsDir, err
}
