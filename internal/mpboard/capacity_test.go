//go:build linux

package mpboard_test

import (
	"bytes"
	"strings"
	"syscall"
	"testing"

	"webrepl/internal/mpboard"
	"webrepl/protocol"
)

// TestFSCapacity fills a board whose flash holds 4000 bytes, from Python
// and through FS: a write past the capacity fails with errno 28 (ENOSPC)
// and writes nothing, a PUT that does not fit fails so and leaves no
// temporary file, freed space is free again, and a soft reset keeps the
// limit.
func TestFSCapacity(t *testing.T) {
	b, l := start(t, &mpboard.Options{FSCapacity: 4000})
	l.enterRaw()
	l.mustExec("open('/a','wb').write(b'a'*3000)")
	got := l.mustExec(`import os
f=open('/b','wb')
f.write(b'b'*500)
try:
    f.write(b'b'*600)
except OSError as e:
    print('errno', e.errno)
f.close()
print(os.stat('/b')[6])
f=open('/a','r+b')
f.write(b'A'*3000)
f.close()
print(open('/a','rb').read(1))`)
	if want := "errno 28\n500\nb'A'\n"; lf(got) != want {
		t.Errorf("writes past the capacity: the board printed %q, want %q (a rewrite in place fits)", got, want)
	}

	pf, err := b.FS().Create("/c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pf.Write(bytes.Repeat([]byte("c"), 1000)); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "a PUT past the capacity", pf.Commit(), syscall.ENOSPC, protocol.ENOSPC)
	if got := l.mustExec("print(sorted(os.listdir('/')))"); !strings.Contains(got, "'a', 'b'") || strings.Contains(got, "'c'") || strings.Contains(got, "webrepl-tmp") {
		t.Errorf("files after the failed PUT: %q", got)
	}

	l.mustExec("os.remove('/a')")
	put(t, b.FS(), "/c", bytes.Repeat([]byte("c"), 3000))

	l.send("\x04")
	l.until(softReboot + rawBanner)
	got = l.mustExec(`try:
    open('/d','wb').write(b'd'*1000)
except OSError as e:
    print('errno', e.errno)
open('/e','wb').write(b'e'*500)
print('ok')`)
	if want := "errno 28\nok\n"; lf(got) != want {
		t.Errorf("after a soft reset: the board printed %q, want %q", got, want)
	}
}

func TestFSCapacityNegative(t *testing.T) {
	if b, err := mpboard.Start(&mpboard.Options{FSCapacity: -1}); err == nil {
		b.Close()
		t.Fatal("a board with a negative FSCapacity started")
	}
}
