//go:build linux

package browser

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

const (
	pPID = 1 // idtype_t P_PID for waitid(2)

	// The pidfd system calls have the same numbers on every architecture
	// Go supports; package syscall does not name them.
	sysPidfdSendSignal = 424
	sysPidfdOpen       = 434

	// sweepTimeout bounds the wait for stragglers to die. SIGKILL takes
	// milliseconds; the bound only keeps a stuck process from hanging
	// Close.
	sweepTimeout = 10 * time.Second
)

// start starts p.cmd in a process group of its own, led by the main
// process, and starts the goroutine that waits for it.
//
// Pdeathsig kills the main process when the thread that forked it exits,
// so the forking goroutine keeps its thread locked, and alive, until the
// main process has exited; without Pdeathsig a test binary that dies
// before Close (a -timeout panic, say) would leave Chromium running.
func (p *Process) start() error {
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go p.run(started)
	return <-started
}

// run owns the main process: it starts it, waits for it to exit, kills
// what is left of its group, and reaps it. It is the only goroutine that
// waits for the process; Close waits for run through p.done.
func (p *Process) run(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := p.cmd.Start(); err != nil {
		started <- err
		return
	}
	started <- nil
	pid := p.cmd.Process.Pid

	// Wait for the exit without reaping: while the main process is an
	// unreaped zombie its PID, which is the group's ID, cannot be reused,
	// so killing the group cannot hit anyone else's processes.
	waitExitedNoReap(pid)
	p.mu.Lock()
	killGroup(pid)
	p.reaped = true
	p.mu.Unlock()

	p.err = p.cmd.Wait()
	sweep(p.dir)
	close(p.done)
}

// kill kills the process group unless the main process has been reaped
// (run has then already killed the group).
func (p *Process) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		killGroup(p.cmd.Process.Pid)
	}
}

// killGroup sends SIGKILL to every process in the group pgid. An empty
// group (ESRCH) is not an error worth reporting.
func killGroup(pgid int) {
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// waitExitedNoReap blocks until the child pid has exited, leaving it
// waitable (WNOWAIT). If waitid fails, it returns at once: the caller
// then kills the group, which ends the process anyway.
func waitExitedNoReap(pid int) {
	var info [128]byte // siginfo_t, which waitid fills in
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			return
		}
	}
}

// sweep kills every process whose command line names a path under dir,
// and waits until each has exited. Those are the run's processes that are
// outside its process group: Chromium's crash handler (its database is
// under dir/home) starts a session of its own. It would exit by itself
// once the browser is gone, but not necessarily before the caller removes
// dir.
func sweep(dir string) {
	mark := []byte(dir + string(filepath.Separator))
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	deadline := time.Now().Add(sweepTimeout)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !mentions(pid, mark) {
			continue
		}
		fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
		if errno != 0 {
			if errno == syscall.ENOSYS { // before Linux 5.3: no waiting
				syscall.Kill(pid, syscall.SIGKILL)
			}
			continue // or it has just exited
		}
		// The pidfd pins the PID: check that it is still the process
		// that named dir before killing it.
		if mentions(pid, mark) {
			syscall.Syscall6(sysPidfdSendSignal, fd, uintptr(syscall.SIGKILL), 0, 0, 0, 0)
			waitPidfd(int(fd), deadline)
		} else {
			syscall.Close(int(fd))
		}
	}
}

// mentions reports whether the command line of process pid contains mark.
// A zombie's command line is empty.
func mentions(pid int, mark []byte) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && bytes.Contains(b, mark)
}

// waitPidfd waits, until deadline at the latest, for the process of pidfd
// fd to exit (a pidfd becomes readable then), and closes fd. The runtime's
// poller does the waiting.
func waitPidfd(fd int, deadline time.Time) {
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	if err := f.SetReadDeadline(deadline); err != nil {
		return // not pollable here: do not wait
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	waited := false
	rc.Read(func(uintptr) bool {
		// Called before waiting, then after each readiness; readiness of
		// a pidfd means the process has exited.
		done := waited
		waited = true
		return done
	})
}
