//go:build !linux

package term

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("terminal: not supported on this system")

// IsTerminal reports whether f is a terminal. Elsewhere than Linux it says
// no, and the CLI falls back to line-by-line input.
func IsTerminal(f *os.File) bool { return false }

// MakeRaw is not supported on this system.
func MakeRaw(f *os.File) (restore func() error, err error) { return nil, errUnsupported }

// ReadPassword is not supported on this system.
func ReadPassword(f *os.File, prompt func()) (string, error) { return "", errUnsupported }
