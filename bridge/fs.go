package bridge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"syscall"

	"webrepl/protocol"
	"webrepl/protocol/remote"
)

// boardFS is the file system one session's Device serves: the board's own
// files, reached through the raw REPL. Only the controller may use it.
type boardFS struct{ c *client }

var _ protocol.FS = (*boardFS)(nil)

func (f *boardFS) allowed() error {
	if !f.c.control.Load() {
		return fmt.Errorf("read-only session: %w", fs.ErrPermission)
	}
	return nil
}

// Open reads the whole file from the board (in chunks, through the raw
// REPL) before the first byte goes to the client.
func (f *boardFS) Open(name string) (io.ReadCloser, error) {
	if err := f.allowed(); err != nil {
		return nil, err
	}
	l := f.c.l
	w := &limitedBuffer{max: l.s.opts.MaxFileSize}
	err := l.do(l.s.ctx, "get "+name, func(ctx context.Context, b *remote.Board) error {
		_, err := b.Get(ctx, name, w)
		return err
	})
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(w.buf.Bytes())), nil
}

// Create collects the file; Commit writes it to the board atomically.
func (f *boardFS) Create(name string) (protocol.PendingFile, error) {
	if err := f.allowed(); err != nil {
		return nil, err
	}
	return &pendingPut{fs: f, name: name, buf: limitedBuffer{max: f.c.l.s.opts.MaxFileSize}}, nil
}

type pendingPut struct {
	fs   *boardFS
	name string
	buf  limitedBuffer
	done bool
}

func (p *pendingPut) Write(b []byte) (int, error) { return p.buf.Write(b) }

// Commit writes the file under a temporary name, checks its SHA-256 on
// the board and renames it over the target.
func (p *pendingPut) Commit() error {
	if p.done {
		return nil
	}
	p.done = true
	if err := p.fs.allowed(); err != nil {
		return err
	}
	l := p.fs.c.l
	data := p.buf.buf.Bytes()
	return l.do(l.s.ctx, "put "+p.name, func(ctx context.Context, b *remote.Board) error {
		return b.Put(ctx, p.name, bytes.NewReader(data), int64(len(data)), nil)
	})
}

func (p *pendingPut) Abort() error {
	p.done = true
	p.buf = limitedBuffer{}
	return nil
}

// limitedBuffer is a bytes.Buffer that refuses to grow past max.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.buf.Len()+len(p) > b.max {
		return 0, fmt.Errorf("the file is larger than the bridge's limit of %d bytes: %w", b.max, syscall.EFBIG)
	}
	return b.buf.Write(p)
}
