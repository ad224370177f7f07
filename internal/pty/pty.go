//go:build linux

// Package pty opens pseudo-terminal pairs. It backs the emulator's --shell
// option and the tests that put a device on a pseudo-terminal and open the
// other end with the serial transport, as a user opens /dev/ttyACM0.
package pty

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"webrepl/internal/term"
)

// Pty is one pseudo-terminal pair. As an io.ReadWriteCloser it is the
// controlling side, e.g. the device end of an emulated serial line.
//
// Master is the controlling side. The Pty keeps a descriptor of the slave
// side open for its whole life, so that reads on Master do not fail with EIO
// while no other program has the slave open (a board whose USB cable is
// plugged in, with nobody listening).
type Pty struct {
	Master *os.File
	// Name is the slave's path, e.g. /dev/pts/7: what a serial client opens.
	Name string

	slave     *os.File
	closeOnce sync.Once
}

// Open creates a pair and puts the slave side in raw mode (no echo, no line
// editing, no CR/LF translation, 8-bit clean), as a serial port is.
func Open() (*Pty, error) {
	return open(true)
}

// OpenTerminal creates a pair whose slave side keeps the usual cooked mode
// (echo, line editing) of a login terminal: a user's terminal in tests.
func OpenTerminal() (*Pty, error) {
	return open(false)
}

func open(raw bool) (*Pty, error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("pty: open /dev/ptmx: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, fmt.Errorf("pty: unlock: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("pty: number: %w", err)
	}
	name := "/dev/pts/" + strconv.Itoa(n)
	s, err := os.OpenFile(name, os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("pty: open %s: %w", name, err)
	}
	if raw {
		if _, err := term.MakeRaw(s); err != nil {
			m.Close()
			s.Close()
			return nil, fmt.Errorf("pty: %w", err)
		}
	}
	return &Pty{Master: m, Name: name, slave: s}, nil
}

// Start runs cmd with the slave side as its controlling terminal and its
// standard input, output and error. The slave keeps the usual cooked mode,
// as a login terminal has. The caller owns the returned Pty and the process:
// it waits for cmd and closes the Pty.
func Start(cmd *exec.Cmd) (*Pty, error) {
	p, err := open(false)
	if err != nil {
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.slave, p.slave, p.slave
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0 // the child's fd 0: the slave
	if err := cmd.Start(); err != nil {
		p.Close()
		return nil, fmt.Errorf("pty: start %s: %w", cmd.Path, err)
	}
	return p, nil
}

// Read reads from the controlling side: what the program on the slave side
// wrote.
func (p *Pty) Read(b []byte) (int, error) { return p.Master.Read(b) }

// Write writes to the controlling side: input for the program on the slave
// side.
func (p *Pty) Write(b []byte) (int, error) { return p.Master.Write(b) }

// Close closes both sides. It is idempotent.
func (p *Pty) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = p.Master.Close()
		if e := p.slave.Close(); err == nil {
			err = e
		}
	})
	return err
}
