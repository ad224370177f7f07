// Command webrepl reaches MicroPython boards over WebREPL: copy files, open
// the REPL, ask the version, or emulate a device. See docs/cli.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"webrepl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args, cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "webrepl") {
			msg = "webrepl: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(cli.ExitCode(err))
	}
}
