package protocol

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode/utf8"
)

// What a device says, byte for byte like modwebrepl.c.
const (
	passwordPrompt  = "Password: "
	connectedBanner = "\r\nWebREPL connected\r\n>>> "
	deniedBanner    = "\r\nAccess denied\r\n"
)

// Device limits and defaults.
const (
	// MaxDevicePassword is the longest password a real device keeps (its
	// buffer holds 10 bytes with the NUL).
	MaxDevicePassword = 9
	// MaxExtendedPassword is the longest password an extended device
	// accepts.
	MaxExtendedPassword = 1024
	// faithfulEntryLen is how many typed password bytes a real device
	// keeps; the rest are dropped before the comparison.
	faithfulEntryLen = MaxDevicePassword + 1
	// DefaultNotice is what a device without Input answers to each line
	// typed at it.
	DefaultNotice = "\r\n[no REPL is attached to this emulated device]\r\n"
)

// defaultVersion is the version a Device reports when
// DeviceOptions.Version is zero.
var defaultVersion = Version{Major: 1, Minor: 27, Micro: 0}

// FS is the file system a Device serves. Names are passed as the client
// sent them (for example "/main.py", "lib/x.py"); the FS decides what they
// mean. Errors should match fs.ErrNotExist, fs.ErrPermission and so on, or
// wrap a syscall.Errno, so that an extended device can report a precise
// status (see ErrorStatus).
//
// A Device calls its FS from the Serve goroutine only, but one FS may be
// shared by several devices.
type FS interface {
	// Open opens name for a GET.
	Open(name string) (io.ReadCloser, error)
	// Create starts a PUT of name. Nothing may appear under name before
	// the PendingFile is committed.
	Create(name string) (PendingFile, error)
}

// PendingFile is a file being received by a PUT.
type PendingFile interface {
	io.Writer
	// Commit makes the file appear under its name atomically (for
	// example a temporary file renamed over the target).
	Commit() error
	// Abort discards the file: an interrupted PUT never leaves a partial
	// file behind. Abort after Commit does nothing.
	Abort() error
}

// DeviceOptions configures NewDevice. A nil *DeviceOptions and the zero
// value both mean all defaults (an empty password, no file system, no
// REPL). NewDevice does not modify or keep the caller's copy.
type DeviceOptions struct {
	// Password is what the client must type. Faithful mode (Extended
	// false) behaves like the device: it keeps only the first 10 typed
	// bytes and compares them as C strings, so passwords longer than
	// MaxDevicePassword (9) bytes, or containing a NUL, are refused by
	// NewDevice. Extended mode accepts up to MaxExtendedPassword bytes and
	// compares in constant time. A password can never contain CR or LF
	// (they end the typed entry). Empty means an empty line logs in, as
	// on a device whose password was never set.
	Password string
	// FS serves file operations. nil means every file operation fails:
	// faithful mode drops the connection, extended mode answers ENODEV.
	FS FS
	// Version is the answer to GET_VER. Zero means 1.27.0.
	Version Version
	// Extended turns on the improvements over real firmware. False
	// (faithful): any file error drops the connection; an unknown op gets
	// WB 0 and then every later binary byte is ignored (the session's file
	// protocol is stuck), as on a device. True: a failed operation answers
	// a non-zero "WB" status (an errno value, see ErrorStatus) and the
	// session stays up; an unknown op answers WB EINVAL; long passwords
	// work. Note that after a non-zero status to a PUT request the device
	// expects no data: a client must not send any (Client.Put does not).
	Extended bool
	// Input is the REPL's input: every byte the client sends in text
	// messages after login is written to it, from the Serve goroutine.
	// nil means no REPL: each line typed is answered with Notice. If a
	// write to Input fails, the device logs it and behaves from then on
	// as if Input were nil. Serve waits for each write, and a cancelled
	// ctx cannot interrupt one, so Input should not block for long.
	Input io.Writer
	// Notice is the text message that answers each line typed when there
	// is no Input. Empty means DefaultNotice.
	Notice string
	// Authenticate, if not nil, decides whether a typed password entry
	// (without its line end) is right, instead of the comparison with
	// Password; Password is then ignored. It runs on the Serve goroutine
	// and may block (to slow down guessing, say) until ctx is done. The
	// entry is cleared after the call: it must not be kept.
	Authenticate func(ctx context.Context, entry []byte) bool
	// OnLogin, if not nil, is called on the Serve goroutine once the
	// password was accepted, just before the login banner goes out. Output
	// passed to Write from then on (also from other goroutines, also while
	// OnLogin runs) reaches the client after the banner, so a caller that
	// starts forwarding output in OnLogin loses none. OnLogin must not call
	// Write itself: the banner's write waits for it.
	OnLogin func()
	// GetVersion, if not nil, answers GET_VER instead of Version (a
	// bridge asks its board). If it fails, Version (or its default) is
	// sent. It runs on the Serve goroutine.
	GetVersion func(ctx context.Context) (Version, error)
	// Logf receives debug messages. nil discards them. Neither the
	// password nor anything typed before login is ever logged.
	Logf func(format string, args ...any)
}

// Device is the device side of one WebREPL session, behaving like
// MicroPython's modwebrepl.c (or better, with DeviceOptions.Extended).
//
// Concurrency: Serve runs the session and must be called once; it owns the
// link's read side and the FS calls. Write and LoggedIn may be called from
// any goroutine at any time, also while Serve runs (typically a goroutine
// pumping the REPL's output into Write). Writes to the link are
// serialised, and REPL output never overtakes the login banner. Serve
// closes the link when it returns; after that Write fails (or, if nobody
// logged in, keeps discarding). Serve starts no goroutines.
type Device struct {
	link     Link
	password []byte
	fs       FS
	version  Version
	extended bool
	notice   []byte
	auth     func(context.Context, []byte) bool
	onLogin  func()
	getVer   func(context.Context) (Version, error)
	logf     func(string, ...any)

	started  atomic.Bool
	loggedIn atomic.Bool

	wmu   sync.Mutex // serialises link writes; guards the fields below
	carry []byte     // start of an incomplete UTF-8 character held back by Write
	input io.Writer  // nil once a write to it failed; owned by Serve
}

// NewDevice returns a device for one session over link. It only checks
// opts; Serve does the work.
func NewDevice(link Link, opts *DeviceOptions) (*Device, error) {
	var o DeviceOptions
	if opts != nil {
		o = *opts
	}
	if link == nil {
		return nil, errors.New("webrepl: new device: nil link")
	}
	if strings.ContainsAny(o.Password, "\r\n") {
		return nil, errors.New("webrepl: new device: the password contains CR or LF, which end a typed password")
	}
	if o.Extended {
		if len(o.Password) > MaxExtendedPassword {
			return nil, fmt.Errorf("webrepl: new device: the password is %d bytes, at most %d are allowed", len(o.Password), MaxExtendedPassword)
		}
	} else {
		if len(o.Password) > MaxDevicePassword {
			return nil, fmt.Errorf("webrepl: new device: the password is %d bytes; a real device keeps at most %d (use Extended for longer ones)", len(o.Password), MaxDevicePassword)
		}
		if strings.IndexByte(o.Password, 0) >= 0 {
			return nil, errors.New("webrepl: new device: the password contains a NUL byte, which a real device cannot compare")
		}
	}
	d := &Device{
		link:     link,
		password: []byte(o.Password),
		fs:       o.FS,
		version:  o.Version,
		extended: o.Extended,
		input:    o.Input,
		notice:   []byte(o.Notice),
		auth:     o.Authenticate,
		onLogin:  o.OnLogin,
		getVer:   o.GetVersion,
		logf:     o.Logf,
	}
	if d.version == (Version{}) {
		d.version = defaultVersion
	}
	if len(d.notice) == 0 {
		d.notice = []byte(DefaultNotice)
	}
	if d.logf == nil {
		d.logf = func(string, ...any) {}
	}
	return d, nil
}

// LoggedIn reports whether the client has logged in.
func (d *Device) LoggedIn() bool { return d.loggedIn.Load() }

// Write sends REPL output to the session's terminal as text messages. Like
// a device, it discards output (and reports it written) until the client
// has logged in. It never splits a UTF-8 character across messages: an
// incomplete character at the end of p is held back until the next Write
// (browsers drop a connection over a broken character). Other bytes are
// sent as they are, even when they are not valid UTF-8, like a device.
func (d *Device) Write(p []byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if !d.loggedIn.Load() {
		return len(p), nil
	}
	data := p
	if len(d.carry) > 0 {
		data = append(d.carry, p...)
		d.carry = nil
	}
	cut := completePrefix(data)
	for sent := 0; sent < cut; {
		end := cut
		if end-sent > MaxMessageSize {
			// Cut at a character boundary, at most 3 bytes earlier.
			end = sent + MaxMessageSize
			for k := 0; k < utf8.UTFMax-1 && !utf8.RuneStart(data[end]); k++ {
				end--
			}
		}
		if err := d.link.WriteMessage(context.Background(), false, data[sent:end]); err != nil {
			return 0, wrap("device write", err)
		}
		sent = end
	}
	if cut < len(data) {
		d.carry = append([]byte(nil), data[cut:]...)
	}
	return len(p), nil
}

// completePrefix returns the length of b without a trailing incomplete
// UTF-8 character.
func completePrefix(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if b[i] >= utf8.RuneSelf && !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// send writes one message with the write lock held.
func (d *Device) send(ctx context.Context, binary bool, p []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	return d.link.WriteMessage(ctx, binary, p)
}

// File-protocol states of a session.
type fileState int

const (
	stateHeader fileState = iota // gathering a request
	statePut                     // receiving PUT data
	stateGet                     // answering GET acks
	stateStuck                   // after an unknown op (faithful): swallow everything
)

// devSession is the state owned by Serve.
type devSession struct {
	d       *Device
	entry   []byte // password typed so far
	hdr     [RequestSize]byte
	hdrN    int
	state   fileState
	req     Request
	put     PendingFile
	putLeft uint32
	putErr  error // extended: the write error that failed the PUT
	get     io.ReadCloser
	leaked  io.ReadCloser // the file an unknown op opened (faithful)
	chunk   []byte
	lastCR  bool // the last typed byte was CR (notice mode)
}

// Serve runs the session until the link ends and closes the link when it
// returns. It sends the password prompt, checks the password, then routes
// every byte the client sends: text to the REPL (DeviceOptions.Input),
// binary to the file protocol. A cancelled ctx closes the link.
//
// It returns nil when the client closes the link in an orderly way between
// operations; an error matching ErrAccessDenied after a wrong password; an
// error wrapping io.ErrUnexpectedEOF when the client leaves in the middle
// of an operation; in faithful mode, an *OpError wrapping the FS error
// that dropped the session; otherwise the link's or ctx's error, wrapped.
// A pending PUT is aborted and open files are closed before it returns.
func (d *Device) Serve(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return errors.New("webrepl: serve: Serve was already called")
	}
	s := &devSession{d: d}
	defer func() {
		s.cleanup()
		d.link.Close()
	}()
	if err := d.send(ctx, false, []byte(passwordPrompt)); err != nil {
		return s.linkErr(ctx, err)
	}
	for {
		binary, p, err := d.link.ReadMessage(ctx)
		if err != nil {
			return s.linkErr(ctx, err)
		}
		if err := s.handle(ctx, binary, p); err != nil {
			return err
		}
	}
}

// linkErr turns the error that ended the link into Serve's result.
func (s *devSession) linkErr(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return wrap("serve", ctxErr)
	}
	if !errors.Is(err, io.EOF) {
		return wrap("serve", err)
	}
	switch {
	case s.state == statePut:
		return &OpError{Op: OpPut, Name: s.req.Name, Err: fmt.Errorf("the client left after %d of %d bytes: %w", s.req.Size-s.putLeft, s.req.Size, io.ErrUnexpectedEOF)}
	case s.state == stateGet:
		return &OpError{Op: OpGet, Name: s.req.Name, Err: fmt.Errorf("the client left in the middle of the transfer: %w", io.ErrUnexpectedEOF)}
	case s.state == stateHeader && s.hdrN > 0:
		return wrap("serve", fmt.Errorf("the client left after %d bytes of a request: %w", s.hdrN, io.ErrUnexpectedEOF))
	}
	return nil
}

// cleanup aborts a pending PUT and closes open files.
func (s *devSession) cleanup() {
	if s.put != nil {
		if err := s.put.Abort(); err != nil {
			s.d.logf("webrepl: put %s: abort: %v", s.req.Name, err)
		}
		s.put = nil
	}
	for _, f := range []io.ReadCloser{s.get, s.leaked} {
		if f != nil {
			f.Close()
		}
	}
	s.get, s.leaked = nil, nil
	clear(s.entry)
}

// handle processes one message from the client.
func (s *devSession) handle(ctx context.Context, binary bool, p []byte) error {
	d := s.d
	if !d.loggedIn.Load() {
		var done bool
		var err error
		p, done, err = s.password(ctx, p)
		if err != nil || !done {
			return err
		}
	}
	if len(p) == 0 {
		return nil
	}
	if binary {
		return s.binary(ctx, p)
	}
	return s.text(ctx, p)
}

// password feeds typed bytes (of either message kind, like a device) to
// the password entry. It returns the bytes after the terminator once the
// entry is complete and right.
func (s *devSession) password(ctx context.Context, p []byte) (rest []byte, done bool, err error) {
	d := s.d
	limit := faithfulEntryLen
	if d.extended {
		limit = MaxExtendedPassword + 1 // longer entries can only mismatch
	}
	for i, c := range p {
		if c != '\r' && c != '\n' {
			if len(s.entry) < limit {
				s.entry = append(s.entry, c)
			}
			continue
		}
		ok := d.checkPassword(ctx, s.entry)
		clear(s.entry)
		s.entry = s.entry[:0]
		if !ok {
			d.logf("webrepl: login refused")
			if err := d.send(ctx, false, []byte(deniedBanner)); err != nil {
				d.logf("webrepl: sending the refusal: %v", err)
			}
			return nil, false, wrap("serve", ErrAccessDenied)
		}
		d.wmu.Lock()
		d.loggedIn.Store(true)
		if d.onLogin != nil {
			d.onLogin()
		}
		err := d.link.WriteMessage(ctx, false, []byte(connectedBanner))
		d.wmu.Unlock()
		if err != nil {
			return nil, false, s.linkErr(ctx, err)
		}
		d.logf("webrepl: logged in")
		return p[i+1:], true, nil
	}
	return nil, false, nil
}

// checkPassword compares a typed entry with the password.
func (d *Device) checkPassword(ctx context.Context, entry []byte) bool {
	if d.auth != nil {
		return d.auth(ctx, entry)
	}
	if d.extended {
		return subtle.ConstantTimeCompare(entry, d.password) == 1
	}
	// strcmp: the entry ends at its first NUL (the password has none).
	if i := bytes.IndexByte(entry, 0); i >= 0 {
		entry = entry[:i]
	}
	return bytes.Equal(entry, d.password)
}

// text handles typed input after login.
func (s *devSession) text(ctx context.Context, p []byte) error {
	d := s.d
	if d.input != nil {
		_, err := d.input.Write(p)
		if err == nil {
			return nil
		}
		d.logf("webrepl: REPL input failed, ignoring input from now on: %v", err)
		d.input = nil
	}
	for _, c := range p {
		if c == '\r' || (c == '\n' && !s.lastCR) {
			if err := d.send(ctx, false, d.notice); err != nil {
				return s.linkErr(ctx, err)
			}
		}
		s.lastCR = c == '\r'
	}
	return nil
}

// binary feeds bytes to the file protocol, like the device: as a stream,
// whatever the message boundaries.
func (s *devSession) binary(ctx context.Context, p []byte) error {
	for len(p) > 0 {
		switch s.state {
		case stateStuck:
			return nil
		case stateHeader:
			n := copy(s.hdr[s.hdrN:], p)
			s.hdrN += n
			p = p[n:]
			if s.hdrN == RequestSize {
				s.hdrN = 0
				if err := s.start(ctx); err != nil {
					return err
				}
			}
		case statePut:
			n := min(uint32(len(p)), s.putLeft)
			if s.putErr == nil {
				if _, err := s.put.Write(p[:n]); err != nil {
					if !s.d.extended {
						return s.fileErr(err)
					}
					s.putErr = err
				}
			}
			s.putLeft -= n
			p = p[n:]
			if s.putLeft == 0 {
				if err := s.finishPut(ctx); err != nil {
					return err
				}
			}
		case stateGet:
			p = p[1:] // an ack; its value is not checked
			if err := s.sendChunk(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// errNoFS is the error of every file operation on a device without FS.
var errNoFS = fmt.Errorf("no file system is attached: %w", syscall.ENODEV)

// start runs a complete request.
func (s *devSession) start(ctx context.Context) error {
	d := s.d
	req, err := DecodeRequest(s.hdr[:])
	if err != nil {
		// Only a name field without NUL fails; a device would read past it.
		s.req = Request{Op: Op(s.hdr[offOp])}
		return s.refuse(ctx, err)
	}
	s.req = req
	switch req.Op {
	case OpGetVersion:
		d.logf("webrepl: get-version")
		v := d.version
		if d.getVer != nil {
			if got, err := d.getVer(ctx); err == nil {
				v = got
			} else {
				d.logf("webrepl: get-version: %v (answering %v)", err, v)
			}
		}
		return s.reply(ctx, AppendVersion(nil, v))
	case OpPut:
		d.logf("webrepl: put %s (%d bytes)", req.Name, req.Size)
		f, err := s.create(req.Name)
		if err != nil {
			return s.refuse(ctx, err)
		}
		s.put, s.putLeft, s.putErr = f, req.Size, nil
		if err := s.status(ctx, 0); err != nil {
			return err
		}
		s.state = statePut
		if req.Size == 0 {
			return s.finishPut(ctx)
		}
		return nil
	case OpGet:
		d.logf("webrepl: get %s", req.Name)
		f, err := s.open(req.Name)
		if err != nil {
			return s.refuse(ctx, err)
		}
		s.get = f
		if err := s.status(ctx, 0); err != nil {
			return err
		}
		s.state = stateGet
		return nil
	}
	d.logf("webrepl: unknown %v", req.Op)
	if d.extended {
		return s.status(ctx, EINVAL)
	}
	// The device opens the file as for a GET, answers WB 0, and never
	// re-arms its header counter.
	f, err := s.open(req.Name)
	if err != nil {
		return s.refuse(ctx, err)
	}
	s.leaked = f
	if err := s.status(ctx, 0); err != nil {
		return err
	}
	s.state = stateStuck
	return nil
}

func (s *devSession) create(name string) (PendingFile, error) {
	if s.d.fs == nil {
		return nil, errNoFS
	}
	return s.d.fs.Create(name)
}

func (s *devSession) open(name string) (io.ReadCloser, error) {
	if s.d.fs == nil {
		return nil, errNoFS
	}
	return s.d.fs.Open(name)
}

// refuse handles a request that failed before it started: faithful mode
// drops the session, extended mode answers the error's status.
func (s *devSession) refuse(ctx context.Context, err error) error {
	if !s.d.extended {
		return s.fileErr(err)
	}
	s.d.logf("webrepl: %v %s: %v", s.req.Op, s.req.Name, err)
	s.state = stateHeader
	return s.status(ctx, ErrorStatus(err))
}

// fileErr is Serve's result when a file error drops the session (faithful
// mode, like the device's exception in its dupterm read).
func (s *devSession) fileErr(err error) error {
	return &OpError{Op: s.req.Op, Name: s.req.Name, Err: fmt.Errorf("%w (the session was dropped, as a real device does)", err)}
}

// finishPut commits (or, after a write error, aborts) the received file
// and sends the final status.
func (s *devSession) finishPut(ctx context.Context) error {
	f := s.put
	s.put = nil
	s.state = stateHeader
	if s.putErr != nil {
		f.Abort()
		s.d.logf("webrepl: put %s: %v", s.req.Name, s.putErr)
		return s.status(ctx, ErrorStatus(s.putErr))
	}
	if err := f.Commit(); err != nil {
		f.Abort()
		if !s.d.extended {
			return s.fileErr(err)
		}
		s.d.logf("webrepl: put %s: %v", s.req.Name, err)
		return s.status(ctx, ErrorStatus(err))
	}
	return s.status(ctx, 0)
}

// sendChunk answers one GET ack.
func (s *devSession) sendChunk(ctx context.Context) error {
	if s.chunk == nil {
		s.chunk = make([]byte, ChunkHeaderSize+ChunkSize)
	}
	n, err := io.ReadFull(s.get, s.chunk[ChunkHeaderSize:])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	if err != nil {
		if !s.d.extended {
			return s.fileErr(err)
		}
		s.d.logf("webrepl: get %s: %v", s.req.Name, err)
		n = 0
	}
	binary.LittleEndian.PutUint16(s.chunk, uint16(n))
	if werr := s.reply(ctx, s.chunk[:ChunkHeaderSize+n]); werr != nil {
		return werr
	}
	if n > 0 {
		return nil
	}
	cerr := s.get.Close()
	s.get = nil
	s.state = stateHeader
	if err == nil && cerr != nil {
		if !s.d.extended {
			return s.fileErr(cerr)
		}
		err = cerr
	}
	return s.status(ctx, ErrorStatus(err))
}

// status sends a "WB" reply.
func (s *devSession) status(ctx context.Context, code uint16) error {
	return s.reply(ctx, AppendReply(make([]byte, 0, ReplySize), code))
}

// reply sends one binary message.
func (s *devSession) reply(ctx context.Context, p []byte) error {
	if err := s.d.send(ctx, true, p); err != nil {
		return s.linkErr(ctx, err)
	}
	return nil
}

var _ io.Writer = (*Device)(nil)
