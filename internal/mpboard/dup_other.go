//go:build !linux

package mpboard

import (
	"errors"
	"os"
)

// nonblockingDup is not needed where pty.Open fails anyway.
func nonblockingDup(f *os.File) (*os.File, error) {
	return nil, errors.New("mpboard: pseudo-terminals are supported on Linux only")
}
