//go:build !linux

package transport

import (
	"os"

	"go.bug.st/serial"
)

// pollFile: only Linux reads serial ports through the runtime's poller.
func pollFile(serial.Port) *os.File { return nil }
