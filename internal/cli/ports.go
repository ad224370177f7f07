package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"webrepl/transport"
)

func portsCommand(a *app) *ucli.Command {
	return &ucli.Command{
		Name:  "ports",
		Usage: "list serial ports, marking those that look like MicroPython boards",
		Flags: []ucli.Flag{jsonFlag()},
		Action: func(c *ucli.Context) error {
			ports, err := transport.ListPorts()
			if err != nil {
				return fmt.Errorf("webrepl: ports: %w", err)
			}
			if c.Bool("json") {
				if ports == nil {
					ports = []transport.PortInfo{}
				}
				return a.printJSON(ports)
			}
			if len(ports) == 0 {
				fmt.Fprintln(a.io.Stderr, "no serial ports found")
				return nil
			}
			for _, p := range ports {
				mark := " "
				if p.MicroPython {
					mark = "*"
				}
				id := "-"
				if p.IsUSB {
					id = p.VID + ":" + p.PID
				}
				fmt.Fprintf(a.io.Stdout, "%s %-20s %-10s %-20s %s\n", mark, p.Name, id, p.Serial, p.Product)
			}
			return nil
		},
	}
}
