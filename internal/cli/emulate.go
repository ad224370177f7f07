package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"webrepl/internal/emulator"
	"webrepl/internal/mpboard"
	"webrepl/internal/pty"
	"webrepl/protocol"
	"webrepl/transport"
)

func emulateCommand(a *app) *ucli.Command {
	return &ucli.Command{
		Name:  "emulate",
		Usage: "serve a directory as a WebREPL device (a board emulator for tests and demos)",
		Description: "Without --dir a new temporary directory is served and removed on exit.\n" +
			"Without --password a random one is made and printed.\n" +
			"Without --shell the terminal says that no REPL is attached; file transfer works either way.",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "listen", Value: "127.0.0.1:8266", Usage: "TCP address for WebSocket clients"},
			&ucli.StringFlag{Name: "dir", Usage: "directory holding the device's files"},
			&ucli.StringFlag{Name: "password", Aliases: []string{"p"}, EnvVars: []string{"WEBREPL_PASSWORD"}, Usage: "password clients must give (at most 9 bytes unless --extended, like firmware)"},
			&ucli.StringFlag{Name: "shell", Usage: "command run on a pseudo-terminal as the device's REPL, e.g. 'python3 -i'"},
			&ucli.BoolFlag{Name: "board", Usage: "the device is a real MicroPython (WebAssembly, run by Node.js): its REPL is the terminal and its files are the device's"},
			&ucli.StringFlag{Name: "serial", Usage: "also serve WebREPL framing (no HTTP) on this serial line; 'pty' makes a new pseudo-terminal and prints its path"},
			&ucli.IntFlag{Name: "baud", Value: 115200, Usage: "baud rate for --serial"},
			&ucli.BoolFlag{Name: "extended", Usage: "answer file errors with a WB error status and keep the session (firmware drops the connection)"},
			&ucli.StringFlag{Name: "version", Value: "1.27.0", Usage: "MicroPython version the device reports"},
			&ucli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log connections to standard error"},
		},
		Action: a.emulate,
	}
}

func (a *app) emulate(c *ucli.Context) error {
	if c.Args().Len() > 0 {
		return &UsageError{Msg: "emulate takes no arguments, only flags"}
	}
	ver, err := parseVersion(c.String("version"))
	if err != nil {
		return err
	}
	password, generated := c.String("password"), false
	if !c.IsSet("password") {
		password, generated = rand.Text()[:8], true
	}

	if c.Bool("board") && (c.IsSet("dir") || c.IsSet("shell")) {
		return &UsageError{Msg: "emulate: --board brings its own REPL and files; leave out --dir and --shell"}
	}
	var board *mpboard.Terminal
	if c.Bool("board") {
		board, err = mpboard.OpenWithFS(nil)
		if err != nil {
			return fmt.Errorf("webrepl: emulate: %w", err)
		}
		defer board.Close()
	}

	dir := c.String("dir")
	if dir == "" && board == nil {
		dir, err = os.MkdirTemp("", "webrepl-device-")
		if err != nil {
			return fmt.Errorf("webrepl: emulate: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	var fsys protocol.FS
	if board != nil {
		fsys = board.FS()
	} else {
		d, err := protocol.DirFS(dir)
		if err != nil {
			return fmt.Errorf("webrepl: emulate: %w", err)
		}
		defer d.Close()
		fsys = d
	}

	var shell []string
	if s := c.String("shell"); s != "" {
		shell = []string{"/bin/sh", "-c", "exec " + s}
	}
	logf := func(string, ...any) {}
	if c.Bool("verbose") {
		logf = func(format string, args ...any) { fmt.Fprintf(a.io.Stderr, format+"\n", args...) }
	}
	opts := &emulator.Options{
		Password: password,
		FS:       fsys,
		Version:  ver,
		Extended: c.Bool("extended"),
		Shell:    shell,
		Logf:     logf,
	}
	if board != nil {
		opts.Terminal = board
	}
	emu, err := emulator.New(opts)
	if err != nil {
		return fmt.Errorf("webrepl: emulate: %w", err)
	}
	defer emu.Close()

	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("webrepl: emulate: %w", err)
	}
	if board != nil {
		fmt.Fprintf(a.io.Stdout, "WebREPL device emulator at ws://%s/ with a MicroPython board\n", ln.Addr())
	} else {
		fmt.Fprintf(a.io.Stdout, "WebREPL device emulator at ws://%s/ serving %s\n", ln.Addr(), dir)
	}

	// The listener and the serial line are served side by side; the first
	// to fail ends both.
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	errs := make(chan error, 2)
	running := 1
	go func() { errs <- emu.Serve(ctx, ln) }()
	if path := c.String("serial"); path != "" {
		var line interface {
			Read([]byte) (int, error)
			Write([]byte) (int, error)
			Close() error
		}
		if path == "pty" {
			p, err := pty.Open()
			if err != nil {
				cancel()
				<-errs
				return fmt.Errorf("webrepl: emulate: %w", err)
			}
			line, path = p, p.Name
		} else {
			s, err := transport.OpenSerial(path, &transport.SerialOptions{Baud: c.Int("baud")})
			if err != nil {
				cancel()
				<-errs
				return err
			}
			line = s
		}
		fmt.Fprintf(a.io.Stdout, "WebREPL framing on serial line %s (connect with -d 'serial://%s?framing=ws')\n", path, path)
		running++
		go func() { errs <- emu.ServeStream(ctx, line) }()
	}
	if generated {
		fmt.Fprintf(a.io.Stdout, "password: %s (made for this run; set one with --password)\n", password)
	}
	err = <-errs
	cancel()
	for running--; running > 0; running-- {
		<-errs
	}
	if c.Context.Err() != nil {
		return nil
	}
	return err
}

func parseVersion(s string) (protocol.Version, error) {
	var v protocol.Version
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, &UsageError{Msg: fmt.Sprintf("--version %q: want MAJOR.MINOR.MICRO, e.g. 1.27.0", s)}
	}
	var nums [3]byte
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 8)
		if err != nil {
			return v, &UsageError{Msg: fmt.Sprintf("--version %q: each part must be 0-255", s)}
		}
		nums[i] = byte(n)
	}
	return protocol.Version{Major: nums[0], Minor: nums[1], Micro: nums[2]}, nil
}
