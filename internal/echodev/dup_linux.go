//go:build linux

package echodev

import (
	"os"

	"golang.org/x/sys/unix"
)

// nonblockingDup returns a duplicate of f in non-blocking mode, so that the
// runtime poller serves it and closing the duplicate unblocks a Read or
// Write in progress. (pty.Open leaves the master in blocking mode; a read
// blocked on it would end only once every descriptor of the slave side, a
// host's included, is closed.) The duplicate shares f's file description,
// so f becomes non-blocking too; only the duplicate is used for I/O.
func nonblockingDup(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl", derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
