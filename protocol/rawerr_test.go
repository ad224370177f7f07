package protocol

import (
	"errors"
	"io/fs"
	"syscall"
	"testing"
)

// rawErrorCases are exception texts as boards print them after the
// first \x04 of a raw REPL answer (reference §2.2, mpremote's
// _convert_filesystem_error for the errno forms).
var rawErrorCases = []struct {
	name      string
	stderr    string
	typ, msg  string
	errno     int
	errString string
}{
	{
		name:   "OSError with errno name (MicroPython)",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nOSError: [Errno 2] ENOENT\r\n",
		typ:    "OSError", msg: "[Errno 2] ENOENT", errno: 2,
		errString: "webrepl: board: OSError: [Errno 2] ENOENT",
	},
	{
		name:   "OSError number only (ports without errno names)",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 3, in <module>\r\nOSError: 2\r\n",
		typ:    "OSError", msg: "2", errno: 2,
	},
	{
		name:   "OSError errno name only",
		stderr: "Traceback (most recent call last):\n  File \"<stdin>\", line 1, in <module>\nOSError: EEXIST\n",
		typ:    "OSError", msg: "EEXIST", errno: 17,
	},
	{
		name:   "OSError ETIMEDOUT",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nOSError: [Errno 110] ETIMEDOUT\r\n",
		typ:    "OSError", msg: "[Errno 110] ETIMEDOUT", errno: 110,
	},
	{
		name:   "OSError negative (lwIP getaddrinfo)",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nOSError: -202\r\n",
		typ:    "OSError", msg: "-202", errno: -202,
	},
	{
		name:   "OSError tuple",
		stderr: "OSError: (-2, 'EAI_NONAME')\r\n",
		typ:    "OSError", msg: "(-2, 'EAI_NONAME')", errno: -2,
	},
	{
		name:   "OSError ENOTEMPTY by number",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nOSError: [Errno 39] ENOTEMPTY\r\n",
		typ:    "OSError", msg: "[Errno 39] ENOTEMPTY", errno: 39,
	},
	{
		name:   "OSError without errno",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nOSError: something odd\r\n",
		typ:    "OSError", msg: "something odd",
	},
	{
		name:   "CPython subclass with errno",
		stderr: "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nFileNotFoundError: [Errno 2] No such file or directory: 'x'\n",
		typ:    "FileNotFoundError", msg: "[Errno 2] No such file or directory: 'x'", errno: 2,
	},
	{
		name:   "CPython subclass without errno",
		stderr: "IsADirectoryError: /flash\n",
		typ:    "IsADirectoryError", msg: "/flash", errno: 21,
	},
	{
		name:   "NameError",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nNameError: name 'foo' isn't defined\r\n",
		typ:    "NameError", msg: "name 'foo' isn't defined",
		errString: "webrepl: board: NameError: name 'foo' isn't defined",
	},
	{
		name:   "ZeroDivisionError (reference §2.2 transcript)",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nZeroDivisionError: divide by zero\r\n",
		typ:    "ZeroDivisionError", msg: "divide by zero",
	},
	{
		name:   "SyntaxError after an early raw-paste abort (reference §2.3)",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1\r\nSyntaxError: invalid syntax\r\n",
		typ:    "SyntaxError", msg: "invalid syntax",
	},
	{
		name:      "KeyboardInterrupt in raw-paste (no traceback, reference §2.3)",
		stderr:    "KeyboardInterrupt: \r\n",
		typ:       "KeyboardInterrupt",
		errString: "webrepl: board: KeyboardInterrupt",
	},
	{
		name:   "KeyboardInterrupt while running",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 5, in <module>\r\nKeyboardInterrupt: \r\n",
		typ:    "KeyboardInterrupt",
	},
	{
		name:   "exception without arguments",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nStopIteration\r\n",
		typ:    "StopIteration",
	},
	{
		name:   "message with colons",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nValueError: bad value: 3\r\n",
		typ:    "ValueError", msg: "bad value: 3",
	},
	{
		name:   "multi-line message",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nValueError: first\r\nsecond\r\n",
		typ:    "ValueError", msg: "first\nsecond",
		errString: "webrepl: board: ValueError: first second",
	},
	{
		name:   "deeper traceback",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 4, in <module>\r\n  File \"<stdin>\", line 2, in f\r\nTypeError: unsupported types for __add__: 'int', 'str'\r\n",
		typ:    "TypeError", msg: "unsupported types for __add__: 'int', 'str'",
	},
	{
		name:   "dotted class name",
		stderr: "mymod.Error: boom\n",
		typ:    "mymod.Error", msg: "boom",
	},
	{
		name:   "trailing blank lines",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nOSError: [Errno 13] EACCES\r\n\r\n\r\n",
		typ:    "OSError", msg: "[Errno 13] EACCES", errno: 13,
	},
	{
		name:   "truncated after the header",
		stderr: "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\n",
		msg:    "File \"<stdin>\", line 1, in <module>",
	},
	{
		name:      "not an exception line",
		stderr:    "something went wrong here\r\n",
		msg:       "something went wrong here",
		errString: "webrepl: board: something went wrong here",
	},
	{
		name:   "not UTF-8",
		stderr: "ValueError: \xff\xfe\r\n",
		typ:    "ValueError", msg: "\xff\xfe",
		errString: "webrepl: board: ValueError: \uFFFD",
	},
	{
		name:      "empty",
		stderr:    "\r\n",
		errString: "webrepl: board: exception",
	},
	{
		name:   "[Errno] in another type",
		stderr: "RuntimeError: [Errno 5] EIO\n",
		typ:    "RuntimeError", msg: "[Errno 5] EIO", errno: 5,
	},
	{
		name:   "errno name in a non-OSError is ignored",
		stderr: "ValueError: ENOENT\n",
		typ:    "ValueError", msg: "ENOENT",
	},
}

func TestParseExecError(t *testing.T) {
	for _, tt := range rawErrorCases {
		t.Run(tt.name, func(t *testing.T) {
			e := parseExecError([]byte(tt.stderr))
			if e.Type != tt.typ || e.Message != tt.msg || e.Errno != tt.errno {
				t.Errorf("got Type %q Message %q Errno %d, want %q %q %d", e.Type, e.Message, e.Errno, tt.typ, tt.msg, tt.errno)
			}
			if e.Traceback != tt.stderr {
				t.Errorf("Traceback %q, want the whole text", e.Traceback)
			}
			if tt.errString != "" && e.Error() != tt.errString {
				t.Errorf("Error() = %q, want %q", e.Error(), tt.errString)
			}
		})
	}
}

func TestExecErrorIs(t *testing.T) {
	tests := []struct {
		errno  int
		target error
		want   bool
	}{
		{2, fs.ErrNotExist, true},
		{2, syscall.ENOENT, true},
		{17, fs.ErrExist, true},
		{13, fs.ErrPermission, true},
		{1, fs.ErrPermission, true},
		{22, fs.ErrInvalid, true},
		{21, syscall.EISDIR, true},
		{20, syscall.ENOTDIR, true},
		{39, syscall.ENOTEMPTY, true},
		{28, syscall.ENOSPC, true},
		{2, fs.ErrExist, false},
		{17, fs.ErrNotExist, false},
		{0, fs.ErrNotExist, false},
		{110, fs.ErrNotExist, false},
		{-202, fs.ErrNotExist, false},
		{21, fs.ErrNotExist, false},
	}
	for _, tt := range tests {
		err := error(&ExecError{Type: "OSError", Errno: tt.errno})
		if got := errors.Is(err, tt.target); got != tt.want {
			t.Errorf("errno %d: errors.Is(%v) = %v, want %v", tt.errno, tt.target, got, tt.want)
		}
	}
	// All the ENOENT forms.
	for _, s := range []string{
		"OSError: [Errno 2] ENOENT\r\n",
		"OSError: 2\r\n",
		"OSError: ENOENT\r\n",
		"FileNotFoundError: [Errno 2] No such file or directory\n",
		"FileNotFoundError: x\n",
	} {
		if err := error(parseExecError([]byte(s))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%q: not fs.ErrNotExist", s)
		}
	}
}

func FuzzParseExecError(f *testing.F) {
	for _, tt := range rawErrorCases {
		f.Add([]byte(tt.stderr))
	}
	f.Fuzz(func(t *testing.T, stderr []byte) {
		e := parseExecError(stderr)
		if e.Traceback != string(stderr) {
			t.Fatalf("Traceback %q, want the input", e.Traceback)
		}
		msg := e.Error()
		for _, c := range msg {
			if c == '\n' || c == '\r' {
				t.Fatalf("Error() has a line break: %q", msg)
			}
		}
		if len(msg) < len(errPrefix) || msg[:len(errPrefix)] != errPrefix {
			t.Fatalf("Error() = %q", msg)
		}
		if e.Type != "" && !isExceptionName(e.Type) {
			t.Fatalf("Type %q is not a name", e.Type)
		}
		_ = errors.Is(e, fs.ErrNotExist)
		_ = e.Unwrap()
	})
}
