//go:build !linux

package pty

import (
	"errors"
	"os"
	"os/exec"
)

// Pty is one pseudo-terminal pair (Linux only).
type Pty struct {
	Master *os.File
	Name   string
}

var errUnsupported = errors.New("pty: pseudo-terminals are supported on Linux only")

// Open is not supported on this system.
func Open() (*Pty, error) { return nil, errUnsupported }

// OpenTerminal is not supported on this system.
func OpenTerminal() (*Pty, error) { return nil, errUnsupported }

// Start is not supported on this system.
func Start(cmd *exec.Cmd) (*Pty, error) { return nil, errUnsupported }

// Read is not supported on this system.
func (p *Pty) Read(b []byte) (int, error) { return 0, errUnsupported }

// Write is not supported on this system.
func (p *Pty) Write(b []byte) (int, error) { return 0, errUnsupported }

// Close does nothing.
func (p *Pty) Close() error { return nil }
