//go:build !darwin || cgo

package transport

import "go.bug.st/serial/enumerator"

// haveUSBDetails: listPorts reports USB vendor, product and serial number.
const haveUSBDetails = true

// listPorts asks go.bug.st/serial/enumerator, with no active USB probing
// (which, its doc says, may upset some devices).
func listPorts() ([]PortInfo, error) {
	details, err := enumerator.GetDetailedPortsList()
	if err != nil {
		return nil, err
	}
	ports := make([]PortInfo, 0, len(details))
	for _, d := range details {
		if d == nil || d.Name == "" {
			continue // Linux reports a port it cannot look up with no name
		}
		ports = append(ports, portInfo(d.Name, d.IsUSB, d.VID, d.PID, d.SerialNumber, d.Product))
	}
	return ports, nil
}
