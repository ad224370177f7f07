package protocol

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// ErrNoResponse means the board stayed silent for longer than
// RawOptions.Silence while an answer was due. Errors that wrap it also
// match os.ErrDeadlineExceeded.
var ErrNoResponse = errors.New("webrepl: the board stopped answering")

// ErrNoREPL means the device said it has no REPL to run code in: a
// WebREPL device emulator started without one. Its file protocol still
// works.
var ErrNoREPL = errors.New("webrepl: the device has no REPL attached")

// ExecError is an exception raised by code that Raw.Exec ran: the board
// printed an exception text (a traceback) after the output.
//
// errors.Is matches it against fs.ErrNotExist (errno 2, ENOENT),
// fs.ErrExist (17, EEXIST), fs.ErrPermission (1, EPERM and 13, EACCES)
// and fs.ErrInvalid (22, EINVAL). For the errno values that have a host
// equivalent (those of errors.go's table: EIO, EISDIR, ENOTDIR, ENOSPC,
// ENOTEMPTY, ...) Unwrap returns that syscall.Errno, so errors.Is also
// matches syscall.EISDIR and so on, and whatever the syscall.Errno matches
// (ENOTEMPTY matches fs.ErrExist, as on the host).
type ExecError struct {
	// Type is the exception's class as printed, e.g. "OSError",
	// "NameError", "KeyboardInterrupt"; empty if the text has no
	// recognisable exception line.
	Type string
	// Message is what follows "Type: " (empty for an exception without
	// arguments). A message of several lines keeps its line breaks ("\n").
	Message string
	// Errno is the MicroPython errno value (equal to Linux's) of an
	// OSError, from "[Errno 2] ENOENT", "OSError: 2" or an errno name; 0
	// if none is known. Some network errors are negative (lwIP codes).
	Errno int
	// Traceback is the whole exception text the board printed.
	Traceback string
}

// Error returns "webrepl: board: Type: Message" on one line.
func (e *ExecError) Error() string {
	msg := strings.ReplaceAll(strings.TrimSpace(e.Message), "\r", "")
	msg = strings.ReplaceAll(msg, "\n", " ")
	var s string
	switch {
	case e.Type != "" && msg != "":
		s = e.Type + ": " + msg
	case e.Type != "":
		s = e.Type
	case msg != "":
		s = msg
	default:
		s = "exception"
	}
	return errPrefix + "board: " + strings.ToValidUTF8(s, "\uFFFD")
}

// Is reports whether the errno means target (see the type doc).
func (e *ExecError) Is(target error) bool {
	switch target {
	case fs.ErrNotExist:
		return e.Errno == int(ENOENT)
	case fs.ErrExist:
		return e.Errno == int(EEXIST)
	case fs.ErrPermission:
		return e.Errno == int(EPERM) || e.Errno == int(EACCES)
	case fs.ErrInvalid:
		return e.Errno == int(EINVAL)
	}
	return false
}

// Unwrap returns the host's syscall.Errno for Errno, or nil.
func (e *ExecError) Unwrap() error {
	if e.Errno <= 0 || e.Errno > 0xffff {
		return nil
	}
	if h, ok := mpToHostErrno[uint16(e.Errno)]; ok {
		return h
	}
	return nil
}

// mpToHostErrno inverts errors.go's hostErrno.
var mpToHostErrno = func() map[uint16]syscall.Errno {
	m := make(map[uint16]syscall.Errno, len(hostErrno))
	for h, mp := range hostErrno {
		m[mp] = h
	}
	return m
}()

// rawErrnoByName maps errno names that MicroPython prints (its errno
// module, py/mperrno.h; the values equal Linux's) to their values.
var rawErrnoByName = func() map[string]int {
	m := map[string]int{
		"ESRCH": 3, "EINTR": 4, "ENXIO": 6, "E2BIG": 7, "ENOEXEC": 8,
		"ECHILD": 10, "EWOULDBLOCK": 11, "EFAULT": 14, "ENOTBLK": 15,
		"EBUSY": 16, "EXDEV": 18, "ENFILE": 23, "EMFILE": 24,
		"ENOTTY": 25, "ETXTBSY": 26, "ESPIPE": 29, "EMLINK": 31,
		"EPIPE": 32, "EDOM": 33, "ERANGE": 34, "EOPNOTSUPP": 95,
		"EAFNOSUPPORT": 97, "EADDRINUSE": 98, "ECONNABORTED": 103,
		"ECONNRESET": 104, "ENOBUFS": 105, "EISCONN": 106,
		"ENOTCONN": 107, "ETIMEDOUT": 110, "ECONNREFUSED": 111,
		"EHOSTUNREACH": 113, "EALREADY": 114, "EINPROGRESS": 115,
		"ECANCELED": 125,
	}
	for code, n := range errnoNames {
		m[n.name] = int(code)
	}
	return m
}()

// rawErrnoOfType gives the errno of CPython's OSError subclasses (some
// boards' error texts, or code that raises them itself) when the text has
// none.
var rawErrnoOfType = map[string]int{
	"FileNotFoundError":    int(ENOENT),
	"FileExistsError":      int(EEXIST),
	"PermissionError":      int(EACCES),
	"IsADirectoryError":    int(EISDIR),
	"NotADirectoryError":   int(ENOTDIR),
	"TimeoutError":         110,
	"ConnectionResetError": 104,
	"BlockingIOError":      int(EAGAIN),
}

// isOSErrorType reports whether typ is OSError, one of its aliases, or a
// subclass CPython defines.
func isOSErrorType(typ string) bool {
	switch typ {
	case "OSError", "IOError", "EnvironmentError":
		return true
	}
	_, ok := rawErrnoOfType[typ]
	return ok
}

// parseExecError parses the exception text of the raw REPL, e.g.
//
//	Traceback (most recent call last):
//	  File "<stdin>", line 1, in <module>
//	OSError: [Errno 2] ENOENT
//
// The exception line is the first line without indentation after the
// last "Traceback" header and its indented lines (or the first line if
// there is no header); lines after it continue its message.
func parseExecError(stderr []byte) *ExecError {
	text := string(stderr)
	e := &ExecError{Traceback: text}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, "\r")
	}
	at := exceptionLine(lines)
	if at < 0 {
		return e
	}
	line := strings.TrimSpace(lines[at])
	rest := strings.TrimRight(strings.Join(lines[at+1:], "\n"), " \t\r\n")
	typ, msg, ok := strings.Cut(line, ": ")
	if !ok {
		typ, msg = strings.TrimSuffix(line, ":"), ""
	}
	if !isExceptionName(typ) {
		typ, msg = "", line
	}
	msg = strings.TrimSpace(msg)
	if rest != "" {
		if msg != "" {
			msg += "\n"
		}
		msg += rest
	}
	e.Type, e.Message = typ, msg
	e.Errno = parseErrno(typ, msg)
	return e
}

// exceptionLine returns the index of the exception line, or -1.
func exceptionLine(lines []string) int {
	header := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "Traceback (most recent call last)") {
			header = i
		}
	}
	if header >= 0 {
		for i := header + 1; i < len(lines); i++ {
			l := lines[i]
			if strings.TrimSpace(l) == "" || l[0] == ' ' || l[0] == '\t' {
				continue
			}
			return i
		}
		// A header and nothing after it: use the last non-empty line.
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.TrimSpace(lines[i]) != "" {
				return i
			}
		}
		return -1
	}
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			return i
		}
	}
	return -1
}

// isExceptionName reports whether s looks like a (dotted) Python name.
func isExceptionName(s string) bool {
	if s == "" {
		return false
	}
	start := true
	for _, c := range s {
		switch {
		case c == '.':
			if start {
				return false
			}
			start = true
			continue
		case c == '_' || unicode.IsLetter(c):
		case unicode.IsDigit(c) && !start:
		default:
			return false
		}
		start = false
	}
	return !start && utf8.ValidString(s)
}

// parseErrno finds the errno of an exception: "[Errno N]" in any
// exception; for OSError and its kin also "N" (or "(N, ...)") as the
// message, an errno name in it, or the errno a CPython subclass implies.
func parseErrno(typ, msg string) int {
	if _, after, ok := strings.Cut(msg, "[Errno "); ok {
		if num, _, ok := strings.Cut(after, "]"); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(num)); err == nil {
				return n
			}
		}
	}
	if !isOSErrorType(typ) {
		return 0
	}
	first := strings.TrimPrefix(strings.TrimSpace(msg), "(")
	if i := strings.IndexAny(first, ", )\n"); i >= 0 {
		first = first[:i]
	}
	if n, err := strconv.Atoi(first); err == nil {
		return n
	}
	for _, w := range strings.FieldsFunc(msg, func(c rune) bool {
		return !(c == '_' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9')
	}) {
		if n, ok := rawErrnoByName[w]; ok {
			return n
		}
	}
	return rawErrnoOfType[typ]
}
