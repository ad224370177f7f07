package mpboard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"webrepl/protocol"
)

// The file channel's wire format; harness/board.mjs ("File channel") is
// the specification. Every integer is little-endian. A request is a u32
// length and then that many bytes: an op code and its arguments. A reply is
// a u32 length and then that many bytes: a u16 status (0 or an errno) and
// the result.
const (
	opStat   byte = 1 // name -> u8 kind, u64 size, i64 mtime (ms)
	opOpen   byte = 2 // name -> u32 handle, u64 size
	opRead   byte = 3 // u32 handle, u32 max -> bytes; none at the end
	opClose  byte = 4 // u32 handle
	opCreate byte = 5 // name -> u32 handle
	opWrite  byte = 6 // u32 handle, data
	opCommit byte = 7 // u32 handle
	opAbort  byte = 8 // u32 handle
	opSave   byte = 9 // host directory; used by Board.Unplug

	lenSize     = 4       // the length prefix of requests and replies
	statusSize  = 2       // a reply's status
	statSize    = 17      // a STAT result
	openSize    = 12      // an OPEN result
	handleSize  = 4       // a CREATE result
	chunkSize   = 1 << 16 // bytes per READ or WRITE request
	maxReply    = statusSize + chunkSize
	maxNameSize = 4096 // longer names are refused before they are sent
)

// Kinds in a STAT result.
const (
	kindFile byte = 1
	kindDir  byte = 2
)

// wireErrno maps the channel's errno values (MicroPython's and Linux's
// numbering) to this platform's.
var wireErrno = map[uint16]syscall.Errno{
	1:  syscall.EPERM,
	2:  syscall.ENOENT,
	5:  syscall.EIO,
	9:  syscall.EBADF,
	11: syscall.EAGAIN,
	12: syscall.ENOMEM,
	13: syscall.EACCES,
	16: syscall.EBUSY,
	17: syscall.EEXIST,
	18: syscall.EXDEV,
	19: syscall.ENODEV,
	20: syscall.ENOTDIR,
	21: syscall.EISDIR,
	22: syscall.EINVAL,
	24: syscall.EMFILE,
	27: syscall.EFBIG,
	28: syscall.ENOSPC,
	30: syscall.EROFS,
	36: syscall.ENAMETOOLONG,
	39: syscall.ENOTEMPTY,
	40: syscall.ELOOP,
}

// errnoError turns a non-zero status into an error.
func errnoError(status uint16) error {
	if e, ok := wireErrno[status]; ok {
		return e
	}
	return fmt.Errorf("board errno %d: %w", status, syscall.EIO)
}

// appendRequest appends one request: its length, op and the parts.
func appendRequest(dst []byte, op byte, parts ...[]byte) []byte {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, op)
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

// ErrChannelClosed reports that the file channel has stopped: the board was
// closed, Node died, or the channel failed (the board logs why). Every
// later call of the FS fails with an error wrapping it.
var ErrChannelClosed = errors.New("mpboard: file channel closed")

// FS is the board's file system as its Python sees it (the Emscripten
// MEMFS inside Node, of the interpreter running at the time: soft resets
// keep the files and the FS follows them), reached through a channel that
// bypasses the REPL: file operations print nothing and work while the REPL
// is busy, like the WebREPL file protocol of firmware. It implements
// protocol.FS.
//
// Names are as on the board: a leading "/" is the root, and other names are
// relative to "/" (the board's current directory at boot), whatever
// os.chdir did since. A PUT writes a temporary file
// ".NAME.webrepl-tmp-RANDOM" beside its target (visible to os.listdir
// meanwhile) and renames it over the target on Commit; Abort removes it.
// Errors are *fs.PathError values wrapping a syscall.Errno (ENOENT matches
// fs.ErrNotExist, and protocol.ErrorStatus reports each as the board's
// errno), or ErrChannelClosed.
//
// The board serves requests whenever JavaScript runs: while its REPL waits
// for input, between input bytes, and while a program prints. A program
// that computes without printing delays every call until it prints or
// ends; Close on the board ends the wait with ErrChannelClosed. (Firmware
// too serves WebREPL file operations only when its REPL polls.)
//
// An FS belongs to one power-on of a board: Board.Unplug ends it (every
// later call fails with ErrChannelClosed), and after Board.Replug,
// Board.FS returns a new one.
//
// Concurrency: an FS may be used from several goroutines at once; requests
// take turns. A file it returns is used by one goroutine at a time.
type FS struct {
	req *os.File // requests, to Node's fd 3; written with mu held
	rep *os.File // replies, from Node's fd 4; read with mu held

	closed atomic.Bool // close was called

	mu   sync.Mutex // one request at a time; guards the fields below
	wbuf []byte     // the request being sent
	err  error      // set when the channel failed: every later call fails
}

var _ protocol.FS = (*FS)(nil)

func newFS(req, rep *os.File) *FS {
	return &FS{req: req, rep: rep}
}

// close ends the channel: calls in progress and later ones fail with
// ErrChannelClosed. It does not wait for the lock, so it unblocks a call
// waiting for a busy board.
func (f *FS) close() {
	f.closed.Store(true)
	f.req.Close()
	f.rep.Close()
}

// roundTrip sends one request and reads its reply into result, which must
// hold it. It returns the length of the result, or a statusError for a
// non-zero status. A failure of the channel itself (a short reply, a broken
// pipe) closes the channel for good.
func (f *FS) roundTrip(result []byte, op byte, parts ...[]byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	if f.closed.Load() {
		return 0, ErrChannelClosed
	}
	f.wbuf = appendRequest(f.wbuf[:0], op, parts...)
	n, err := f.exchange(result)
	if len(f.wbuf) > 2*chunkSize {
		f.wbuf = nil
	}
	if _, ok := err.(statusError); ok {
		return 0, err
	}
	if err != nil {
		if f.closed.Load() {
			err = ErrChannelClosed
		} else {
			err = fmt.Errorf("%w: %w", ErrChannelClosed, err)
		}
		f.err = err
		f.close()
		return 0, err
	}
	return n, nil
}

// exchange does the I/O of roundTrip. Only a failure of the channel is
// returned as err; an errno reply comes back as a statusError.
func (f *FS) exchange(result []byte) (int, error) {
	if _, err := f.req.Write(f.wbuf); err != nil {
		return 0, err
	}
	var head [lenSize + statusSize]byte
	if _, err := io.ReadFull(f.rep, head[:]); err != nil {
		return 0, unexpectedEOF(err)
	}
	n := int(binary.LittleEndian.Uint32(head[:]))
	status := binary.LittleEndian.Uint16(head[lenSize:])
	if n < statusSize || n > maxReply {
		return 0, fmt.Errorf("reply of %d bytes", n)
	}
	n -= statusSize
	if status != 0 && n != 0 {
		return 0, fmt.Errorf("error reply with %d bytes of result", n)
	}
	if n > len(result) {
		return 0, fmt.Errorf("result of %d bytes, at most %d expected", n, len(result))
	}
	if _, err := io.ReadFull(f.rep, result[:n]); err != nil {
		return 0, unexpectedEOF(err)
	}
	if status != 0 {
		return 0, statusError{status}
	}
	return n, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// statusError is an errno reply, passed from exchange to call.
type statusError struct{ status uint16 }

func (e statusError) Error() string { return fmt.Sprintf("status %d", e.status) }

// call is roundTrip with errors reported against op and name.
func (f *FS) call(op, name string, result []byte, code byte, parts ...[]byte) (int, error) {
	n, err := f.roundTrip(result, code, parts...)
	if se, ok := err.(statusError); ok {
		err = errnoError(se.status)
	}
	if err != nil {
		return 0, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return n, nil
}

// checkName refuses names that cannot be sent; the board judges the rest.
func checkName(op, name string) error {
	if len(name) > maxNameSize {
		return &fs.PathError{Op: op, Path: name, Err: syscall.ENAMETOOLONG}
	}
	return nil
}

// wantSize checks that a fixed-size result came whole.
func wantSize(op, name string, n, want int) error {
	if n != want {
		return &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("%w: result of %d bytes, want %d", ErrChannelClosed, n, want)}
	}
	return nil
}

func handleBytes(h uint32) []byte { return binary.LittleEndian.AppendUint32(nil, h) }

// Stat describes name on the board. Symbolic links are followed.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	if err := checkName("stat", name); err != nil {
		return nil, err
	}
	var res [statSize]byte
	n, err := f.call("stat", name, res[:], opStat, []byte(name))
	if err != nil {
		return nil, err
	}
	if err := wantSize("stat", name, n, statSize); err != nil {
		return nil, err
	}
	fi := &fileInfo{
		name:  path.Base(name),
		size:  int64(binary.LittleEndian.Uint64(res[1:])),
		mtime: time.UnixMilli(int64(binary.LittleEndian.Uint64(res[9:]))),
		mode:  0o644,
	}
	switch res[0] {
	case kindFile:
	case kindDir:
		fi.mode = fs.ModeDir | 0o755
	default:
		fi.mode = fs.ModeIrregular | 0o644
	}
	return fi, nil
}

// Open opens a regular file for reading (a GET). A directory gives an error
// wrapping syscall.EISDIR; other files that are not regular one wrapping
// syscall.EINVAL. The file stays the one opened when name is replaced or
// removed meanwhile (a GET during a PUT of the same name reads the old
// file whole); it is read 64 KiB per request. Close it.
func (f *FS) Open(name string) (io.ReadCloser, error) {
	if err := checkName("open", name); err != nil {
		return nil, err
	}
	var res [openSize]byte
	n, err := f.call("open", name, res[:], opOpen, []byte(name))
	if err != nil {
		return nil, err
	}
	if err := wantSize("open", name, n, openSize); err != nil {
		return nil, err
	}
	return &fileReader{
		fs:     f,
		name:   name,
		handle: binary.LittleEndian.Uint32(res[:]),
	}, nil
}

// Create starts a PUT of name: it creates an empty temporary file beside
// it. The target's directory must exist; a target that is a directory gives
// an error wrapping syscall.EISDIR. Writes are sent 64 KiB at a time.
func (f *FS) Create(name string) (protocol.PendingFile, error) {
	if err := checkName("create", name); err != nil {
		return nil, err
	}
	var res [handleSize]byte
	n, err := f.call("create", name, res[:], opCreate, []byte(name))
	if err != nil {
		return nil, err
	}
	if err := wantSize("create", name, n, handleSize); err != nil {
		return nil, err
	}
	return &pendingFile{
		fs:     f,
		name:   name,
		handle: binary.LittleEndian.Uint32(res[:]),
	}, nil
}

// fileReader is a file open for a GET. Used by one goroutine at a time.
type fileReader struct {
	fs     *FS
	name   string
	handle uint32
	buf    []byte // read ahead, not yet returned (a window into chunk)
	chunk  []byte // the read-ahead buffer, chunkSize bytes once used
	eof    bool
	closed bool
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, &fs.PathError{Op: "read", Path: r.name, Err: fs.ErrClosed}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.buf) == 0 {
		if r.eof {
			return 0, io.EOF
		}
		// Large reads go straight into p; small ones through the
		// read-ahead buffer, so that each request moves a whole chunk.
		direct := len(p) >= chunkSize
		dst := p[:min(len(p), chunkSize)]
		if !direct {
			if r.chunk == nil {
				r.chunk = make([]byte, chunkSize)
			}
			dst = r.chunk
		}
		var max [4]byte
		binary.LittleEndian.PutUint32(max[:], uint32(len(dst)))
		n, err := r.fs.call("read", r.name, dst, opRead, handleBytes(r.handle), max[:])
		if err != nil {
			return 0, err
		}
		if n == 0 {
			r.eof = true
			return 0, io.EOF
		}
		if direct {
			return n, nil
		}
		r.buf = dst[:n]
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close releases the file on the board. It is idempotent.
func (r *fileReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.buf, r.chunk = nil, nil
	_, err := r.fs.call("close", r.name, nil, opClose, handleBytes(r.handle))
	return err
}

// pendingFile is a PUT in progress. Used by one goroutine at a time.
type pendingFile struct {
	fs     *FS
	name   string
	handle uint32
	buf    []byte // written, not yet sent; at most chunkSize bytes
	err    error  // the first failure: the file can only be aborted
	done   bool   // committed or aborted
}

func (p *pendingFile) Write(b []byte) (int, error) {
	if p.done {
		return 0, &fs.PathError{Op: "write", Path: p.name, Err: fs.ErrClosed}
	}
	if p.err != nil {
		return 0, p.err
	}
	total := len(b)
	done := 0 // bytes of b sent or buffered
	for len(b) > 0 {
		if p.buf == nil {
			p.buf = make([]byte, 0, chunkSize)
		}
		k := min(len(b), chunkSize-len(p.buf))
		p.buf = append(p.buf, b[:k]...)
		b = b[k:]
		if len(p.buf) == chunkSize {
			if err := p.flush(); err != nil {
				return done, err // the k bytes went with the lost chunk
			}
		}
		done += k
	}
	return total, nil
}

// flush sends the buffered bytes. A failure sticks.
func (p *pendingFile) flush() error {
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.fs.call("write", p.name, nil, opWrite, handleBytes(p.handle), p.buf)
	p.buf = p.buf[:0]
	if err != nil {
		p.err = err
	}
	return err
}

// Commit sends what is buffered and renames the temporary file over the
// target. After a failure the temporary file is gone.
func (p *pendingFile) Commit() error {
	if p.done {
		return &fs.PathError{Op: "commit", Path: p.name, Err: fs.ErrClosed}
	}
	err := p.err
	if err == nil {
		err = p.flush()
	}
	if err != nil {
		p.Abort()
		return err
	}
	p.done = true
	p.buf = nil
	_, err = p.fs.call("commit", p.name, nil, opCommit, handleBytes(p.handle))
	return err
}

// Abort removes the temporary file. After Commit it does nothing.
func (p *pendingFile) Abort() error {
	if p.done {
		return nil
	}
	p.done = true
	p.buf = nil
	_, err := p.fs.call("abort", p.name, nil, opAbort, handleBytes(p.handle))
	if errors.Is(err, ErrChannelClosed) {
		return nil // the board keeps nothing of a closed channel's files
	}
	return err
}

// fileInfo describes a board file.
type fileInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.mtime }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return nil }

// save copies every regular file and directory of the board, with their
// modification times, into the existing host directory dir (the harness's
// SAVE op), for a board that is about to lose power. Like every call, it
// waits while the board computes without printing.
func (f *FS) save(dir string) error {
	if err := checkName("save", dir); err != nil {
		return err
	}
	_, err := f.call("save", dir, nil, opSave, []byte(dir))
	return err
}
