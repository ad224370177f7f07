package protocol

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// tempInfix marks the temporary files of pending PUTs:
// ".NAME.webrepl-tmp-RANDOM" next to the target.
const tempInfix = ".webrepl-tmp-"

// Dir is an FS over a host directory, confined with os.Root: no name can
// reach outside the directory, whether through "..", an absolute path or a
// symbolic link (links that point outside, and absolute links, are
// refused with an error matching fs.ErrPermission). A device name such as "/lib/x.py" or "lib/x.py" means
// lib/x.py under the directory: the device's root and its current
// directory are both the directory itself.
//
// A PUT writes a temporary file beside its target and renames it over the
// target on Commit; Abort removes it. Files are not synced to disk.
//
// Concurrency: a Dir may be used from several goroutines (several
// devices) at once. Close it when no device uses it any more.
type Dir struct {
	root *os.Root
}

var _ FS = (*Dir)(nil)

// DirFS opens dir as an FS.
func DirFS(dir string) (*Dir, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("webrepl: dir fs: %w", err)
	}
	return &Dir{root: root}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// hostName maps a device name to a name relative to the root.
func hostName(op, name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", &fs.PathError{Op: op, Path: name, Err: ErrBadName}
	}
	if name == "" {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	rel := strings.TrimLeft(name, "/")
	if rel == "" {
		return "", &fs.PathError{Op: op, Path: name, Err: syscall.EISDIR}
	}
	return rel, nil
}

// pathErr reports err against the device name, keeping its cause.
func pathErr(op, name string, err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err
	} else if le, ok := errors.AsType[*os.LinkError](err); ok {
		err = le.Err
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// confined marks os.Root's refusals (a name or link leading out of the
// directory) as permission errors, so that an extended device answers
// EACCES. Root reports them with an unexported error that is no errno.
func confined(err error) error {
	pe, ok := err.(*fs.PathError)
	if !ok {
		return err
	}
	if _, isErrno := errors.AsType[syscall.Errno](pe.Err); isErrno {
		return err
	}
	for _, known := range []error{fs.ErrNotExist, fs.ErrPermission, fs.ErrExist, fs.ErrInvalid, fs.ErrClosed, ErrBadName} {
		if errors.Is(pe.Err, known) {
			return err
		}
	}
	return &fs.PathError{Op: pe.Op, Path: pe.Path, Err: fmt.Errorf("%w: %w", pe.Err, fs.ErrPermission)}
}

// Open opens a regular file for a GET. A directory gives an error wrapping
// syscall.EISDIR; other non-regular files one wrapping syscall.EINVAL.
func (d *Dir) Open(name string) (io.ReadCloser, error) {
	rel, err := hostName("open", name)
	if err != nil {
		return nil, err
	}
	f, err := d.root.Open(rel)
	if err != nil {
		return nil, confined(pathErr("open", name, err))
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, pathErr("open", name, err)
	}
	if fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EINVAL}
	}
	return f, nil
}

// Create starts a PUT: it creates a temporary file in the target's
// directory. The target's directory must exist; a target that is a
// directory gives an error wrapping syscall.EISDIR.
func (d *Dir) Create(name string) (PendingFile, error) {
	rel, err := hostName("create", name)
	if err != nil {
		return nil, err
	}
	dir, base := path.Split(rel)
	if base == "" {
		return nil, &fs.PathError{Op: "create", Path: name, Err: syscall.EISDIR}
	}
	if fi, err := d.root.Stat(rel); err == nil && fi.IsDir() {
		return nil, &fs.PathError{Op: "create", Path: name, Err: syscall.EISDIR}
	}
	tmp := dir + "." + base + tempInfix + rand.Text()[:12]
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, confined(pathErr("create", name, err))
	}
	return &pendingFile{root: d.root, f: f, tmp: tmp, rel: rel, name: name}, nil
}

// pendingFile is a PUT in progress in a Dir. It is used by one goroutine.
type pendingFile struct {
	root     *os.Root
	f        *os.File
	tmp, rel string
	name     string // as the device got it, for errors
	finished bool
}

func (p *pendingFile) Write(b []byte) (int, error) {
	if p.finished {
		return 0, &fs.PathError{Op: "write", Path: p.name, Err: fs.ErrClosed}
	}
	n, err := p.f.Write(b)
	if err != nil {
		return n, pathErr("write", p.name, err)
	}
	return n, nil
}

func (p *pendingFile) Commit() error {
	if p.finished {
		return &fs.PathError{Op: "commit", Path: p.name, Err: fs.ErrClosed}
	}
	p.finished = true
	if err := p.f.Close(); err != nil {
		p.root.Remove(p.tmp)
		return pathErr("close", p.name, err)
	}
	if err := p.root.Rename(p.tmp, p.rel); err != nil {
		p.root.Remove(p.tmp)
		return confined(pathErr("rename", p.name, err))
	}
	return nil
}

func (p *pendingFile) Abort() error {
	if p.finished {
		return nil
	}
	p.finished = true
	p.f.Close()
	if err := p.root.Remove(p.tmp); err != nil {
		return pathErr("remove", p.name, err)
	}
	return nil
}
