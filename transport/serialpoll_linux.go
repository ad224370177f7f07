package transport

import (
	"os"
	"reflect"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"
)

// pollFile returns the port's descriptor, duplicated and made
// non-blocking, as an *os.File that the Go runtime's network poller
// serves, or nil if that cannot be had.
//
// go.bug.st/serial reads by waiting in pselect(2) and then calling
// read(2): two system calls per read, and a blocked reader holds its
// thread and, until the runtime takes it back, the scheduler's P, which
// delays other goroutines (a bridge's client pumps) when there are few
// cores. Through the poller a read that finds data is one read(2), and a
// read that finds none parks the goroutine and frees the thread.
//
// The library does not hand out its descriptor; its unixPort keeps it in
// the field handle, which this reads with reflect (reading an unexported
// field is allowed; the port is neither changed nor copied). Should a
// later version of the library keep it elsewhere, pollFile returns nil and
// Serial reads through the library as before (TestSerialUsesPoller
// notices).
func pollFile(p serial.Port) *os.File {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	h := v.Elem().FieldByName("handle")
	if !h.IsValid() || h.Kind() != reflect.Int {
		return nil
	}
	fd, err := unix.FcntlInt(uintptr(h.Int()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	// O_NONBLOCK belongs to the open file description, which the dup
	// shares with the library's descriptor: from here on every read and
	// write of the port goes through the returned file.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), "")
}
