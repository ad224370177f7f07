package protocol

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newDirFS makes a directory tree for the tests:
//
//	outside/secret.txt         (beside the root, must stay unreachable)
//	root/test.txt
//	root/lib/x.py
//	root/lib/inner -> x.py     (a relative link inside: allowed)
//	root/up -> ../outside      (relative link leaving the root)
//	root/slash -> /            (absolute link)
//	root/abs -> <tmp>/outside  (absolute link to the outside)
func newDirFS(t *testing.T) (*Dir, string, string) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "lib")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(outside, "secret.txt"): "secret",
		filepath.Join(root, "test.txt"):      "0123456789",
		filepath.Join(root, "lib", "x.py"):   "print('x')",
	}
	for name, data := range files {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		filepath.Join(root, "lib", "inner"): "x.py",
		filepath.Join(root, "up"):           "../outside",
		filepath.Join(root, "slash"):        "/",
		filepath.Join(root, "abs"):          outside,
	}
	for name, target := range links {
		if err := os.Symlink(target, name); err != nil {
			t.Skipf("symlinks not available: %v", err)
		}
	}
	d, err := DirFS(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, root, outside
}

func TestDirFSOpen(t *testing.T) {
	d, _, _ := newDirFS(t)
	ok := []struct{ name, want string }{
		{"/test.txt", "0123456789"},
		{"test.txt", "0123456789"},
		{"/lib/x.py", "print('x')"},
		{"lib/x.py", "print('x')"},
		{"//lib//x.py", "print('x')"},
		{"/lib/inner", "print('x')"},
		{"/lib/../test.txt", "0123456789"},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			f, err := d.Open(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := io.ReadAll(f)
			if err != nil || string(got) != tt.want {
				t.Errorf("read %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	refused := []struct {
		name   string
		status uint16 // what an extended device would answer; 0: any
	}{
		{"../outside/secret.txt", EACCES},
		{"/../outside/secret.txt", EACCES},
		{"/../../etc/passwd", EACCES},
		{"a/../../outside/secret.txt", 0}, // ENOENT: there is no a/
		{"lib/../../outside/secret.txt", EACCES},
		{"/up/secret.txt", EACCES},
		{"/slash/etc/passwd", EACCES},
		{"/abs/secret.txt", EACCES},
		{"/missing.txt", ENOENT},
		{"", ENOENT},
		{"/lib", EISDIR},
		{"/", EISDIR},
		{"a\x00b", EINVAL},
	}
	for _, tt := range refused {
		t.Run("refuse "+tt.name, func(t *testing.T) {
			f, err := d.Open(tt.name)
			if err == nil {
				got, _ := io.ReadAll(f)
				f.Close()
				t.Fatalf("opened, read %q", got)
			}
			if tt.status != 0 && ErrorStatus(err) != tt.status {
				t.Errorf("err = %v, status %d; want %d", err, ErrorStatus(err), tt.status)
			}
			if strings.Contains(err.Error(), "webrepl-tmp") {
				t.Errorf("error names a temporary file: %v", err)
			}
		})
	}
}

func TestDirFSCreate(t *testing.T) {
	d, root, outside := newDirFS(t)
	put := func(name, data string) error {
		p, err := d.Create(name)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(p, data); err != nil {
			p.Abort()
			return err
		}
		return p.Commit()
	}
	ok := []struct{ name, host string }{
		{"/new.txt", "new.txt"},
		{"rel.txt", "rel.txt"},
		{"/lib/y.py", "lib/y.py"},
		{"/test.txt", "test.txt"}, // replaces
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			if err := put(tt.name, "data "+tt.name); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(root, tt.host))
			if err != nil || string(got) != "data "+tt.name {
				t.Errorf("host file %q, %v", got, err)
			}
		})
	}
	refused := []struct {
		name   string
		status uint16
	}{
		{"../escape.txt", EACCES},
		{"/../../tmp/escape.txt", EACCES},
		{"a/../../escape.txt", 0},
		{"/up/escape.txt", EACCES},
		{"/abs/escape.txt", EACCES},
		{"/slash/tmp/escape.txt", EACCES},
		{"/nodir/x.txt", ENOENT},
		{"/lib", EISDIR},
		{"/lib/", EISDIR},
		{"/", EISDIR},
	}
	for _, tt := range refused {
		t.Run("refuse "+tt.name, func(t *testing.T) {
			err := put(tt.name, "escape")
			if err == nil {
				t.Fatal("created")
			}
			if tt.status != 0 && ErrorStatus(err) != tt.status {
				t.Errorf("err = %v, status %d; want %d", err, ErrorStatus(err), tt.status)
			}
		})
	}
	if names := dirNames(t, outside); len(names) != 1 {
		t.Errorf("outside holds %v, want only secret.txt", names)
	}
	if names := dirNames(t, filepath.Dir(root)); strings.Join(names, " ") != "outside root" {
		t.Errorf("the root's parent holds %v, want outside and root", names)
	}
	for _, n := range allNames(t, root) {
		if strings.Contains(n, tempInfix) {
			t.Errorf("temporary file left: %s", n)
		}
	}
}

func TestDirFSAbort(t *testing.T) {
	d, root, _ := newDirFS(t)
	p, err := d.Create("/test.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	var tmp []string
	for _, n := range dirNames(t, root) {
		if strings.Contains(n, tempInfix) {
			tmp = append(tmp, n)
		}
	}
	if len(tmp) != 1 || !strings.HasPrefix(tmp[0], ".test.txt"+tempInfix) {
		t.Fatalf("temporary files %v, want one .test.txt%s*", tmp, tempInfix)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "test.txt")); string(got) != "0123456789" {
		t.Errorf("the target changed before Commit: %q", got)
	}
	if err := p.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := p.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if err := p.Commit(); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Commit after Abort = %v", err)
	}
	for _, n := range dirNames(t, root) {
		if strings.Contains(n, tempInfix) {
			t.Errorf("temporary file left after Abort: %s", n)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, "test.txt")); string(got) != "0123456789" {
		t.Errorf("the target changed after Abort: %q", got)
	}
}

// TestDirFSOverDevice runs a device on a Dir: a put and a get of a nested
// path, and an escape attempt answered with a status.
func TestDirFSOverDevice(t *testing.T) {
	d, root, _ := newDirFS(t)
	s := newSession(t, &DeviceOptions{Password: "pw", FS: d, Extended: true}, nil)
	ctx := testCtx(t)
	data := pattern(3000)
	if err := s.c.Put(ctx, "/lib/data.bin", strings.NewReader(string(data)), int64(len(data)), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(root, "lib", "data.bin")); err != nil || string(got) != string(data) {
		t.Fatalf("host copy: %d bytes, %v", len(got), err)
	}
	var out strings.Builder
	if _, err := s.c.Get(ctx, "/lib/data.bin", &out, nil); err != nil || out.String() != string(data) {
		t.Fatalf("Get: %v", err)
	}
	if _, err := s.c.Get(ctx, "/../outside/secret.txt", io.Discard, nil); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("escape: err = %v, want EACCES", err)
	}
	var se *StatusError
	if _, err := s.c.Get(ctx, "/lib", io.Discard, nil); !errors.As(err, &se) || se.Code != EISDIR {
		t.Errorf("Get of a directory = %v, want EISDIR", err)
	}
	if err := s.c.Put(ctx, "/nodir/x", strings.NewReader("x"), 1, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Put into a missing directory = %v, want ENOENT", err)
	}
}

func TestDirFSMissingDir(t *testing.T) {
	_, err := DirFS(filepath.Join(t.TempDir(), "none"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "webrepl: ") {
		t.Errorf("err = %v", err)
	}
}

// allNames lists a tree.
func allNames(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err == nil {
			names = append(names, path)
		}
		return nil
	})
	return names
}
