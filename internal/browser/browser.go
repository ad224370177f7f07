package browser

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// EnvPath is the environment variable that, when set, names the Chromium
// executable Find returns (a path, or a name looked up on PATH).
const EnvPath = "WEBREPL_CHROMIUM"

// ErrNotFound is returned, wrapped, by Find and Start when there is no
// Chromium to run.
var ErrNotFound = errors.New("browser: chromium not found")

// candidates are the names Find looks up on PATH, in order, when EnvPath
// is not set, then fallback.
var candidates = []string{"chromium", "chromium-browser", "google-chrome"}

const fallback = "/usr/bin/chromium"

// Find returns the path of the Chromium executable: $WEBREPL_CHROMIUM when
// it is set (and then only that), else the first of chromium,
// chromium-browser and google-chrome found on PATH, else /usr/bin/chromium.
// When there is none, the error wraps ErrNotFound and says where Find
// looked.
func Find() (string, error) {
	if v := os.Getenv(EnvPath); v != "" {
		p, err := exec.LookPath(v)
		if err != nil {
			return "", fmt.Errorf("%w: $%s is %q: %v", ErrNotFound, EnvPath, v, err)
		}
		return filepath.Abs(p)
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return filepath.Abs(p)
		}
	}
	if p, err := exec.LookPath(fallback); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: $%s is not set, none of %s is on PATH, and there is no %s (on Debian: apt-get install chromium)",
		ErrNotFound, EnvPath, strings.Join(candidates, ", "), fallback)
}

// Options configures Start. A nil *Options means all defaults.
type Options struct {
	// Path is the Chromium executable. Empty means the result of Find.
	Path string
	// Dir holds everything of this run: the profile (--user-data-dir),
	// the HOME Chromium sees (its crash database and caches go there, not
	// into the real home), and the files that receive its stdout and
	// stderr. It must not hold another run's files. Empty means a new
	// temporary directory that Close removes.
	Dir string
}

// flags are the switches every run gets, before the caller's arguments.
// The network ones keep Chromium from reaching out to Google's services:
// on a closed network those connections are refused, and on an open one
// they make tests depend on it.
var flags = []string{
	"--headless",
	"--no-sandbox", // needed as root; the pages are the tests' own
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--no-proxy-server", // loopback pages, whatever $http_proxy says
	// The page's console messages go to stderr ("INFO:CONSOLE"), where a
	// failing test can quote them.
	"--enable-logging=stderr",
	"--log-level=0",
}

// Process is a running Chromium started by Start.
//
// Its methods may be called from any goroutine. The caller must call
// Close, which is the only way the process is stopped before it exits on
// its own.
type Process struct {
	cmd    *exec.Cmd
	dir    string
	ownDir bool   // Close removes dir
	tmp    string // Chromium's TMPDIR, which Close removes

	done chan struct{} // closed once the main process has been waited for
	err  error         // the main process's exit error; written before done is closed

	// mu guards reaped and orders killing the process group against
	// reaping the main process (see proc_linux.go).
	mu     sync.Mutex
	reaped bool

	closeOnce sync.Once
	closeErr  error
}

// Start runs Chromium headless with args after its fixed switches, for
// example a URL, or "--dump-dom", URL.
//
// The switches are --headless --no-sandbox --disable-gpu --disable-quic
// --no-first-run --disable-background-networking
// --disable-component-update --disable-sync --no-proxy-server
// --enable-logging=stderr --log-level=0 (so the page's console messages
// reach Stderr) and --user-data-dir inside opts.Dir, where its HOME is
// too; its TMPDIR is a directory of its own that Close removes, so that
// nothing of the run is left behind.
//
// On Linux, Chromium runs in a process group of its own. When its main
// process exits, or when Close is called, the whole group is killed, and
// so is any process that left the group but names opts.Dir on its
// command line (Chromium's crash handler detaches into a session of its
// own); Done is closed only once they are all gone. If the test binary
// dies before Close, the kernel kills the main process (Pdeathsig), and
// its helpers exit when they lose it. On other systems only the main
// process is killed.
func Start(opts *Options, args ...string) (p *Process, err error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Path == "" {
		if o.Path, err = Find(); err != nil {
			return nil, err
		}
	}
	ownDir := false
	if o.Dir != "" {
		if o.Dir, err = filepath.Abs(o.Dir); err != nil {
			return nil, fmt.Errorf("browser: %w", err)
		}
	} else {
		if o.Dir, err = os.MkdirTemp("", "chromium-"); err != nil {
			return nil, fmt.Errorf("browser: %w", err)
		}
		ownDir = true
		defer func() {
			if err != nil {
				os.RemoveAll(o.Dir)
			}
		}()
	}

	profile := filepath.Join(o.Dir, "profile")
	home := filepath.Join(o.Dir, "home")
	for _, d := range []string{profile, home} {
		// Mkdir, not MkdirAll: an existing profile means Dir is shared.
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, fmt.Errorf("browser: %w", err)
		}
	}
	// Chromium makes its singleton socket's directory in TMPDIR and leaves
	// it there when killed. A socket's path must stay short (108 bytes),
	// which Dir may not be: a short directory of its own, removed by
	// Close.
	tmp, err := os.MkdirTemp("", "chromium-tmp-")
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	stdout, err := os.Create(filepath.Join(o.Dir, "stdout"))
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(o.Dir, "stderr"))
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	defer stderr.Close()

	argv := append(append(append([]string(nil), flags...), "--user-data-dir="+profile), args...)
	cmd := exec.Command(o.Path, argv...)
	// Files, not pipes: Wait then returns when the main process exits,
	// without waiting for helpers that inherited the descriptors.
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.Env = append(withoutVars(os.Environ(), "HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "TMPDIR"),
		"HOME="+home,
		"TMPDIR="+tmp,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
	)

	p = &Process{cmd: cmd, dir: o.Dir, ownDir: ownDir, tmp: tmp, done: make(chan struct{})}
	if err := p.start(); err != nil {
		return nil, fmt.Errorf("browser: start %s: %w", o.Path, err)
	}
	return p, nil
}

// Pid returns the process ID of the main process, which on Linux is also
// the ID of its process group.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done returns a channel that is closed when the main process has exited
// and, on Linux, everything else of the run has been killed and is gone.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the main process ended, as exec.Cmd.Wait reports it:
// nil for exit status 0. It is nil until Done is closed; after Close it
// reports the kill unless the process had already exited.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stdout returns what Chromium has written to its standard output so far.
func (p *Process) Stdout() ([]byte, error) {
	return p.readOutput("stdout")
}

// Stderr returns what Chromium has written to its standard error so far:
// its log, which is where to look when a page does not behave.
func (p *Process) Stderr() ([]byte, error) {
	return p.readOutput("stderr")
}

func (p *Process) readOutput(name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(p.dir, name))
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	return b, nil
}

// Close kills Chromium (on Linux its whole process group) unless it has
// already exited, waits for the main process, and removes the directory
// Start made when Options.Dir was empty. It may be called any number of
// times and concurrently; every call returns when the process is gone.
// After Close, Stdout and Stderr work only if the caller chose Dir.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		p.kill()
		<-p.done
		if err := os.RemoveAll(p.tmp); err != nil {
			p.closeErr = fmt.Errorf("browser: %w", err)
		}
		if p.ownDir {
			if err := os.RemoveAll(p.dir); err != nil {
				p.closeErr = fmt.Errorf("browser: %w", err)
			}
		}
	})
	return p.closeErr
}

// withoutVars returns env without the variables named.
func withoutVars(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
