//go:build darwin && !cgo

package transport

import "go.bug.st/serial"

// haveUSBDetails: go.bug.st/serial/enumerator needs cgo on macOS, so this
// build lists ports by name only.
const haveUSBDetails = false

func listPorts() ([]PortInfo, error) {
	names, err := serial.GetPortsList()
	if err != nil {
		return nil, err
	}
	ports := make([]PortInfo, 0, len(names))
	for _, n := range names {
		ports = append(ports, PortInfo{Name: n})
	}
	return ports, nil
}
