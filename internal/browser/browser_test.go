package browser_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"webrepl/internal/browser"
)

// writeExe writes an executable shell script.
func writeExe(t *testing.T, path, script string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFind(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "my-chrome")
	writeExe(t, fake, "exit 0\n")
	notExe := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(notExe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	onPath := t.TempDir()
	writeExe(t, filepath.Join(onPath, "chromium-browser"), "exit 0\n")
	writeExe(t, filepath.Join(onPath, "google-chrome"), "exit 0\n")

	tests := []struct {
		name    string
		env     string // $WEBREPL_CHROMIUM
		path    string // $PATH
		want    string // "" when the result depends on the machine
		wantErr bool
	}{
		{name: "env path wins over PATH", env: fake, path: onPath, want: fake},
		{name: "env names a missing file", env: filepath.Join(dir, "missing"), path: onPath, wantErr: true},
		{name: "env names a file that is not executable", env: notExe, path: onPath, wantErr: true},
		{name: "env name looked up on PATH", env: "google-chrome", path: onPath, want: filepath.Join(onPath, "google-chrome")},
		{name: "PATH in candidate order", path: onPath, want: filepath.Join(onPath, "chromium-browser")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(browser.EnvPath, tt.env)
			t.Setenv("PATH", tt.path)
			got, err := browser.Find()
			if tt.wantErr {
				if !errors.Is(err, browser.ErrNotFound) {
					t.Fatalf("Find() = %q, %v; want an error wrapping ErrNotFound", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Find() = %q, %v; want %q, nil", got, err, tt.want)
			}
		})
	}

	t.Run("nothing on PATH", func(t *testing.T) {
		t.Setenv(browser.EnvPath, "")
		t.Setenv("PATH", t.TempDir())
		got, err := browser.Find()
		switch {
		case err == nil && got == "/usr/bin/chromium": // the fallback, on this machine
		case err != nil && errors.Is(err, browser.ErrNotFound):
			t.Logf("error, as expected without /usr/bin/chromium: %v", err)
		default:
			t.Fatalf("Find() = %q, %v; want /usr/bin/chromium or ErrNotFound", got, err)
		}
	})
}

func TestStartNotFound(t *testing.T) {
	t.Setenv(browser.EnvPath, filepath.Join(t.TempDir(), "missing"))
	p, err := browser.Start(nil, "about:blank")
	if p != nil || !errors.Is(err, browser.ErrNotFound) {
		t.Fatalf("Start = %v, %v; want nil and an error wrapping ErrNotFound", p, err)
	}
}

func TestStartRefusesUsedDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "profile"), 0o700); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(t.TempDir(), "fake")
	writeExe(t, fake, "exit 0\n")
	p, err := browser.Start(&browser.Options{Path: fake, Dir: dir})
	if p != nil || err == nil {
		t.Fatalf("Start on a directory with a profile = %v, %v; want an error", p, err)
	}
}

// TestStartArgsAndEnv runs a fake browser that prints its arguments and
// HOME, and checks the fixed switches, the profile and the output files.
func TestStartArgsAndEnv(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "fake")
	writeExe(t, fake, `printf '%s\n' "$@"; echo "HOME=$HOME"; echo oops >&2; exit 3`+"\n")
	dir := t.TempDir()
	p, err := browser.Start(&browser.Options{Path: fake, Dir: dir}, "--dump-dom", "http://x/")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	<-p.Done()
	var exit interface{ ExitCode() int }
	if err := p.Err(); !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Err() = %v; want exit status 3", err)
	}
	out, err := p.Stdout()
	if err != nil {
		t.Fatal(err)
	}
	want := "--headless\n--no-sandbox\n--disable-gpu\n--disable-quic\n--no-first-run\n" +
		"--disable-background-networking\n--disable-component-update\n--disable-sync\n" +
		"--no-proxy-server\n--enable-logging=stderr\n--log-level=0\n" +
		"--user-data-dir=" + filepath.Join(dir, "profile") + "\n--dump-dom\nhttp://x/\n" +
		"HOME=" + filepath.Join(dir, "home") + "\n"
	if string(out) != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if e, err := p.Stderr(); err != nil || string(e) != "oops\n" {
		t.Errorf("Stderr() = %q, %v; want %q", e, err, "oops\n")
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
}

// TestStartOwnDir checks that a run without Options.Dir gets a temporary
// directory that Close removes.
func TestStartOwnDir(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "fake")
	writeExe(t, fake, `echo "$HOME"`+"\n")
	p, err := browser.Start(&browser.Options{Path: fake})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	out, err := p.Stdout()
	if err != nil {
		t.Fatal(err)
	}
	home := string(out[:len(out)-1])
	if _, err := os.Stat(home); err != nil {
		t.Fatalf("HOME %q: %v", home, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(home)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s: %v; want it removed", filepath.Dir(home), err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}
