//go:build !linux

package echodev

import (
	"errors"
	"os"
)

// nonblockingDup is never reached: pty.Open fails on this system.
func nonblockingDup(*os.File) (*os.File, error) {
	return nil, errors.New("pseudo-terminals are supported on Linux only")
}
