package protocol

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
	"testing"
)

func TestStatusError(t *testing.T) {
	tests := []struct {
		err   StatusError
		msg   string
		is    []error
		isNot []error
	}{
		{StatusError{OpGet, "/x.py", 2}, "webrepl: get /x.py: device status 2 (ENOENT: no such file or directory)",
			[]error{fs.ErrNotExist}, []error{fs.ErrPermission, fs.ErrExist}},
		{StatusError{OpPut, "main.py", 13}, "webrepl: put main.py: device status 13 (EACCES: permission denied)",
			[]error{fs.ErrPermission}, []error{fs.ErrNotExist}},
		{StatusError{OpPut, "main.py", 1}, "webrepl: put main.py: device status 1 (EPERM: operation not permitted)",
			[]error{fs.ErrPermission}, nil},
		{StatusError{OpPut, "a", 17}, "webrepl: put a: device status 17 (EEXIST: file exists)", []error{fs.ErrExist}, nil},
		{StatusError{OpPut, "a", 28}, "webrepl: put a: device status 28 (ENOSPC: no space left on device)", nil, []error{fs.ErrNotExist}},
		{StatusError{OpGetVersion, "", 22}, "webrepl: get-version: device status 22 (EINVAL: invalid argument)", []error{fs.ErrInvalid}, nil},
		{StatusError{OpGet, "b", 999}, "webrepl: get b: device status 999", nil, []error{fs.ErrNotExist}},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			var err error = fmt.Errorf("outer: %w", &tt.err)
			if got := tt.err.Error(); got != tt.msg {
				t.Errorf("Error() = %q, want %q", got, tt.msg)
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("not errors.Is %v", target)
				}
			}
			for _, target := range tt.isNot {
				if errors.Is(err, target) {
					t.Errorf("errors.Is %v", target)
				}
			}
		})
	}
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want uint16
	}{
		{"nil", nil, 0},
		{"not exist", &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}, ENOENT},
		{"os not exist", func() error { _, err := os.Open("/definitely/not/here"); return err }(), ENOENT},
		{"permission", fs.ErrPermission, EACCES},
		{"exist", fmt.Errorf("wrapped: %w", fs.ErrExist), EEXIST},
		{"errno EISDIR", &fs.PathError{Op: "read", Path: "d", Err: syscall.EISDIR}, EISDIR},
		{"errno ENOSPC", syscall.ENOSPC, ENOSPC},
		{"errno ENOTDIR", syscall.ENOTDIR, ENOTDIR},
		{"errno ENAMETOOLONG", syscall.ENAMETOOLONG, ENAMETOOLONG},
		{"errno EROFS", syscall.EROFS, EROFS},
		{"no fs", errNoFS, ENODEV},
		{"name too long", fmt.Errorf("%w: 70 bytes", ErrNameTooLong), ENAMETOOLONG},
		{"bad name", ErrBadName, EINVAL},
		{"invalid", fs.ErrInvalid, EINVAL},
		{"status passes through", &StatusError{OpGet, "x", 28}, 28},
		{"anything else", io.ErrShortWrite, EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorStatus(tt.err); got != tt.want {
				t.Errorf("ErrorStatus(%v) = %d, want %d", tt.err, got, tt.want)
			}
		})
	}
}

func TestOpErrorMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&OpError{OpPut, "main.py", fmt.Errorf("%w: 64 bytes", ErrNameTooLong)}, "webrepl: put main.py: file name too long: 64 bytes"},
		{&OpError{OpGetVersion, "", io.ErrUnexpectedEOF}, "webrepl: get-version: unexpected EOF"},
		{wrap("login", fmt.Errorf("%w: no", ErrAccessDenied)), "webrepl: login: access denied: no"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	if err := (&OpError{OpGet, "x", ErrProtocol}); !errors.Is(err, ErrProtocol) {
		t.Error("OpError does not unwrap")
	}
}
