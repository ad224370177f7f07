//go:build linux

package pty

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"testing"
)

func TestRawPairIsEightBitClean(t *testing.T) {
	p, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	s, err := os.OpenFile(p.Name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if _, err := p.Master.Write(all); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(all))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("slave read % x, want every byte value once in order", got)
	}
}

func TestStartRunsCommandOnTerminal(t *testing.T) {
	cmd := exec.Command("sh", "-c", "test -t 0 && echo on-a-tty")
	p, err := Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var out bytes.Buffer
	buf := make([]byte, 256)
	for !bytes.Contains(out.Bytes(), []byte("on-a-tty")) {
		n, err := p.Master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			t.Fatalf("read: %v; output so far %q", err, out.String())
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("command: %v", err)
	}
}
