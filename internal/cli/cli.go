// Package cli is the webrepl command line: it builds the urfave/cli app,
// turns flags and arguments into calls on the protocol and transport
// packages, and reports errors as one line.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"
)

// IO is where a run of the command line reads and writes. Tests swap it.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// UsageError is a mistake in the command line itself. Its exit code is 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// ExitCode returns the process exit code for err: 0 for nil, 2 for usage
// errors, 1 for everything else.
func ExitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	default:
		return 1
	}
}

// Run runs the command line args (args[0] is the program name). It returns
// the first error; it never exits the process and never panics on bad input.
func Run(ctx context.Context, args []string, stdio IO) error {
	a := &app{io: stdio}
	ua := a.build()
	return ua.RunContext(ctx, reorderArgs(ua, args))
}

type app struct {
	io IO
}

// Flags every client command shares. They are defined on the app and on each
// command, so they work before the command name as well as after it.
func clientFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{
			Name:    "device",
			Aliases: []string{"d"},
			Usage:   "device address: ws://host[:port], wss://host[:port], host[:port] (ws on 8266), serial://PATH?framing=ws",
			EnvVars: []string{"WEBREPL_DEVICE"},
		},
		&ucli.StringFlag{
			Name:    "password",
			Aliases: []string{"p"},
			Usage:   "WebREPL password (asked for without echo when not given)",
			EnvVars: []string{"WEBREPL_PASSWORD"},
		},
		&ucli.StringFlag{
			Name:    "tls-fingerprint",
			Usage:   "trust a wss:// device's TLS certificate if, and only if, its SHA-256 fingerprint is this `HEX` (colons optional), e.g. what 'webrepl bridge --tls-self-signed' prints",
			EnvVars: []string{"WEBREPL_TLS_FINGERPRINT"},
		},
		&ucli.DurationFlag{
			Name:  "timeout",
			Usage: "time allowed to connect and log in",
			Value: 10 * time.Second,
		},
		&ucli.IntFlag{
			Name:  "baud",
			Usage: "serial line speed, when the device is a serial port",
			Value: 115200,
		},
	}
}

func (a *app) build() *ucli.App {
	withClient := func(cmd *ucli.Command) *ucli.Command {
		common := clientFlags()
		for _, f := range cmd.Flags {
			if !slices.Contains(f.Names(), "p") {
				continue
			}
			// The command's own -p (mkdir -p) wins; the password is then
			// --password or WEBREPL_PASSWORD.
			for _, cf := range common {
				if sf, ok := cf.(*ucli.StringFlag); ok && sf.Name == "password" {
					sf.Aliases = nil
				}
			}
		}
		cmd.Flags = append(common, cmd.Flags...)
		return cmd
	}
	ua := &ucli.App{
		Name:      "webrepl",
		Usage:     "reach MicroPython boards over WebREPL",
		UsageText: "webrepl [-d DEVICE] [-p PASSWORD] COMMAND [ARGS...]",
		Description: "Flags may come before or after the command and its arguments.\n" +
			"The device comes from -d or WEBREPL_DEVICE: ws://host[:port], wss://..., host[:port] (WebREPL on 8266),\n" +
			"/dev/ttyACM0, COM3, auto, usb:VID:PID[:SERIAL], id:SERIAL, tcp://host:port, serial://PATH?baud=N[&framing=ws].\n" +
			"The password (WebREPL only) comes from -p, WEBREPL_PASSWORD, or a prompt.",
		Reader:                 a.io.Stdin,
		Writer:                 a.io.Stdout,
		ErrWriter:              a.io.Stderr,
		Flags:                  clientFlags(),
		EnableBashCompletion:   true,
		Suggest:                true,
		UseShortOptionHandling: false,
		ExitErrHandler:         func(*ucli.Context, error) {},
		OnUsageError:           usageError,
		Commands: []*ucli.Command{
			withClient(&ucli.Command{
				Name:      "put",
				Usage:     "copy a local file to the device",
				ArgsUsage: "LOCAL [:REMOTE]",
				Description: "REMOTE starts with ':'. Without it, or when it ends in '/', the local file's name is kept.\n" +
					"LOCAL '-' reads standard input (then REMOTE must name the file).",
				Flags:  []ucli.Flag{noVerifyFlag()},
				Action: a.put,
			}),
			withClient(&ucli.Command{
				Name:        "get",
				Usage:       "copy a file from the device",
				ArgsUsage:   ":REMOTE [LOCAL]",
				Description: "LOCAL defaults to the current directory; a directory keeps the remote name; '-' writes to standard output.",
				Action:      a.get,
			}),
			withClient(&ucli.Command{
				Name:   "version",
				Usage:  "print the device's MicroPython version",
				Flags:  []ucli.Flag{jsonFlag()},
				Action: a.version,
			}),
			withClient(&ucli.Command{
				Name:        "repl",
				Usage:       "open the device's REPL in this terminal (Ctrl-] exits)",
				Description: "The terminal is put in raw mode, so Ctrl-C and Ctrl-D reach the board; Ctrl-] ends the session and restores the terminal.",
				Action:      a.repl,
			}),
			emulateCommand(a),
			bridgeCommand(a),
			portsCommand(a),
		},
	}
	for _, cmd := range boardCommands(a) {
		ua.Commands = append(ua.Commands, withClient(cmd))
	}
	for _, c := range ua.Commands {
		c.OnUsageError = usageError
	}
	return ua
}

func usageError(c *ucli.Context, err error, _ bool) error {
	return &UsageError{Msg: fmt.Sprintf("%v (see 'webrepl %s --help')", err, c.Command.Name)}
}

// reorderArgs moves the flags that follow a command's positional arguments
// in front of them: urfave/cli v2 stops parsing flags at the first
// positional argument and would otherwise treat "put a.py :a.py -p pw" as
// three arguments. A "--" keeps everything after it positional.
func reorderArgs(ua *ucli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	// Flags before the command name belong to the app.
	for len(rest) > 0 && isFlag(rest[0]) {
		n := flagWidth(ua.Flags, rest)
		out = append(out, rest[:n]...)
		rest = rest[n:]
	}
	if len(rest) == 0 || rest[0] == "--" {
		return append(out, rest...)
	}
	cmd := findCommand(ua, rest[0])
	out = append(out, rest[0])
	rest = rest[1:]
	if cmd == nil {
		return append(out, rest...)
	}
	var flags, pos []string
	for len(rest) > 0 {
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		if !isFlag(rest[0]) {
			pos = append(pos, rest[0])
			rest = rest[1:]
			continue
		}
		n := flagWidth(cmd.Flags, rest)
		flags = append(flags, rest[:n]...)
		rest = rest[n:]
	}
	out = append(out, flags...)
	for _, p := range pos {
		if isFlag(p) {
			return append(append(out, "--"), pos...)
		}
	}
	return append(out, pos...)
}

func isFlag(s string) bool { return len(s) > 1 && s[0] == '-' }

// flagWidth says how many words the flag at rest[0] takes: 2 for a flag that
// takes a value given as the next word, else 1.
func flagWidth(defs []ucli.Flag, rest []string) int {
	name := strings.TrimLeft(rest[0], "-")
	if strings.Contains(name, "=") {
		return 1
	}
	for _, f := range defs {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if v, ok := f.(ucli.DocGenerationFlag); ok && v.TakesValue() && len(rest) > 1 {
				return 2
			}
			return 1
		}
	}
	return 1
}

func findCommand(ua *ucli.App, name string) *ucli.Command {
	for _, c := range ua.Commands {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// stdinFile returns standard input as a file when it is one.
func (a *app) stdinFile() (*os.File, bool) {
	f, ok := a.io.Stdin.(*os.File)
	return f, ok
}
