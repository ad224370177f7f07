package protocol

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
)

// errPrefix starts every error message of this package.
const errPrefix = "webrepl: "

// Sentinel errors. Match them with errors.Is; the returned errors wrap them
// with details. The package also returns errors that wrap io.EOF,
// io.ErrUnexpectedEOF (the device dropped the connection in the middle of
// an operation), net.ErrClosed (the Client or Device was closed) and the
// context's error (a cancelled or expired ctx).
var (
	// ErrAccessDenied means the device refused the password, or dropped
	// the connection after it was sent.
	ErrAccessDenied = errors.New("webrepl: access denied")
	// ErrBusy means the device closed the connection before asking for a
	// password: what firmware does while another WebREPL session is
	// active, until it notices that the earlier client has gone. Trying
	// again shortly usually works.
	ErrBusy = errors.New("webrepl: the device closed the connection before asking for a password (busy with another WebREPL session?)")
	// ErrNameTooLong means a file name does not fit in a request
	// (MaxNameLen bytes).
	ErrNameTooLong = errors.New("webrepl: file name too long")
	// ErrBadName means a file name is empty where one is needed, is not
	// valid UTF-8, or contains a NUL byte.
	ErrBadName = errors.New("webrepl: bad file name")
	// ErrProtocol means the peer sent something the protocol does not
	// allow: a reply without "WB", binary data nobody asked for, a
	// malformed record.
	ErrProtocol = errors.New("webrepl: protocol error")
)

// protocolErrorf returns an error wrapping ErrProtocol.
func protocolErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// trimPrefix drops the package prefix from a wrapped error's message, so
// that wrapping does not repeat it.
func trimPrefix(err error) string {
	return strings.TrimPrefix(err.Error(), errPrefix)
}

// prefixless shows a lower layer's error without its "webrepl: " prefix,
// for use inside a message that has one already.
type prefixless struct{ err error }

func (e prefixless) Error() string { return trimPrefix(e.err) }
func (e prefixless) Unwrap() error { return e.err }

// wrapError adds context ("login", "serve") to an error without repeating
// the package prefix.
type wrapError struct {
	what string
	err  error
}

func (e *wrapError) Error() string { return errPrefix + e.what + ": " + trimPrefix(e.err) }
func (e *wrapError) Unwrap() error { return e.err }

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return &wrapError{what: what, err: err}
}

// OpError is the error of a file operation (put, get, get-version) that
// failed for a reason other than a device status: Err says why. Its
// message is "webrepl: OP NAME: reason".
type OpError struct {
	Op   Op
	Name string // the device file name; empty for OpGetVersion
	Err  error
}

func (e *OpError) Error() string {
	if e.Name == "" {
		return errPrefix + e.Op.String() + ": " + trimPrefix(e.Err)
	}
	return errPrefix + e.Op.String() + " " + e.Name + ": " + trimPrefix(e.Err)
}

// Unwrap returns e.Err.
func (e *OpError) Unwrap() error { return e.Err }

// StatusError is a non-zero status in a "WB" reply. Real firmware never
// sends one (it drops the connection instead); an extended device does,
// with a MicroPython errno value as the code. The session stays usable.
//
// errors.Is matches it against fs.ErrNotExist (code 2), fs.ErrPermission
// (1 and 13), fs.ErrExist (17) and fs.ErrInvalid (22).
type StatusError struct {
	Op   Op
	Name string // the device file name; empty for OpGetVersion
	Code uint16 // a MicroPython (Linux) errno value
}

func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString(errPrefix)
	b.WriteString(e.Op.String())
	if e.Name != "" {
		b.WriteString(" ")
		b.WriteString(e.Name)
	}
	b.WriteString(": device status ")
	b.WriteString(strconv.Itoa(int(e.Code)))
	if n, ok := errnoNames[e.Code]; ok {
		b.WriteString(" (")
		b.WriteString(n.name)
		b.WriteString(": ")
		b.WriteString(n.text)
		b.WriteString(")")
	}
	return b.String()
}

// Is reports whether the status code means target (see the type doc).
func (e *StatusError) Is(target error) bool {
	switch target {
	case fs.ErrNotExist:
		return e.Code == ENOENT
	case fs.ErrPermission:
		return e.Code == EPERM || e.Code == EACCES
	case fs.ErrExist:
		return e.Code == EEXIST
	case fs.ErrInvalid:
		return e.Code == EINVAL
	}
	return false
}

// MicroPython errno values (they equal Linux's) that an extended device
// sends as "WB" status codes.
const (
	EPERM        uint16 = 1
	ENOENT       uint16 = 2
	EIO          uint16 = 5
	EBADF        uint16 = 9
	EAGAIN       uint16 = 11
	ENOMEM       uint16 = 12
	EACCES       uint16 = 13
	EEXIST       uint16 = 17
	ENODEV       uint16 = 19
	ENOTDIR      uint16 = 20
	EISDIR       uint16 = 21
	EINVAL       uint16 = 22
	EFBIG        uint16 = 27
	ENOSPC       uint16 = 28
	EROFS        uint16 = 30
	ENAMETOOLONG uint16 = 36
	ENOTEMPTY    uint16 = 39
)

var errnoNames = map[uint16]struct{ name, text string }{
	EPERM:        {"EPERM", "operation not permitted"},
	ENOENT:       {"ENOENT", "no such file or directory"},
	EIO:          {"EIO", "input/output error"},
	EBADF:        {"EBADF", "bad file descriptor"},
	EAGAIN:       {"EAGAIN", "resource temporarily unavailable"},
	ENOMEM:       {"ENOMEM", "out of memory"},
	EACCES:       {"EACCES", "permission denied"},
	EEXIST:       {"EEXIST", "file exists"},
	ENODEV:       {"ENODEV", "no such device"},
	ENOTDIR:      {"ENOTDIR", "not a directory"},
	EISDIR:       {"EISDIR", "is a directory"},
	EINVAL:       {"EINVAL", "invalid argument"},
	EFBIG:        {"EFBIG", "file too large"},
	ENOSPC:       {"ENOSPC", "no space left on device"},
	EROFS:        {"EROFS", "read-only file system"},
	ENAMETOOLONG: {"ENAMETOOLONG", "file name too long"},
	ENOTEMPTY:    {"ENOTEMPTY", "directory not empty"},
}

// hostErrno maps the host's errno values to MicroPython's. The host's
// numbers differ between systems; the names do not.
var hostErrno = map[syscall.Errno]uint16{
	syscall.EPERM:        EPERM,
	syscall.ENOENT:       ENOENT,
	syscall.EIO:          EIO,
	syscall.EBADF:        EBADF,
	syscall.EAGAIN:       EAGAIN,
	syscall.ENOMEM:       ENOMEM,
	syscall.EACCES:       EACCES,
	syscall.EEXIST:       EEXIST,
	syscall.ENODEV:       ENODEV,
	syscall.ENOTDIR:      ENOTDIR,
	syscall.EISDIR:       EISDIR,
	syscall.EINVAL:       EINVAL,
	syscall.EFBIG:        EFBIG,
	syscall.ENOSPC:       ENOSPC,
	syscall.EROFS:        EROFS,
	syscall.ENAMETOOLONG: ENAMETOOLONG,
	syscall.ENOTEMPTY:    ENOTEMPTY,
}

// ErrorStatus returns the "WB" status an extended device answers for err:
// 0 for nil; the code of a *StatusError; the MicroPython value of a host
// syscall.Errno (ENOENT, EISDIR, ENOSPC, ...); the errno of an *ExecError
// (an OSError on a board); 2, 13, 17 or 22 for errors
// matching fs.ErrNotExist, fs.ErrPermission, fs.ErrExist or fs.ErrInvalid;
// 36 for ErrNameTooLong; 22 for ErrBadName; 5 (EIO) for anything else.
func ErrorStatus(err error) uint16 {
	if err == nil {
		return 0
	}
	if se, ok := errors.AsType[*StatusError](err); ok && se.Code != 0 {
		return se.Code
	}
	if errno, ok := errors.AsType[syscall.Errno](err); ok {
		if code, ok := hostErrno[errno]; ok {
			return code
		}
	}
	if ee, ok := errors.AsType[*ExecError](err); ok && ee.Errno > 0 && ee.Errno <= 0xffff {
		return uint16(ee.Errno) // the board's own errno numbering
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ENOENT
	case errors.Is(err, fs.ErrPermission):
		return EACCES
	case errors.Is(err, fs.ErrExist):
		return EEXIST
	case errors.Is(err, ErrNameTooLong):
		return ENAMETOOLONG
	case errors.Is(err, ErrBadName), errors.Is(err, fs.ErrInvalid):
		return EINVAL
	}
	return EIO
}
