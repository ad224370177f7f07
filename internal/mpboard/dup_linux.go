//go:build linux

package mpboard

import (
	"os"
	"syscall"
)

// nonblockingDup returns a duplicate of f in non-blocking mode, so that the
// runtime poller serves it and Close unblocks a Read or Write in progress.
// (pty.Open has put the master in blocking mode by taking its descriptor; a
// blocked read on it would return only once every slave descriptor, a
// host's included, is closed.) The duplicate shares f's file description,
// so f becomes non-blocking too; only the duplicate is used for I/O.
func nonblockingDup(f *os.File) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd int
	var derr error
	err = rc.Control(func(s uintptr) {
		r, _, e := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if e != 0 {
			derr = os.NewSyscallError("fcntl", e)
			return
		}
		fd = int(r)
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("setnonblock", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
