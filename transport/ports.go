package transport

import (
	"cmp"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// PortInfo describes a serial port found by ListPorts.
type PortInfo struct {
	// Name is what OpenSerial takes: /dev/ttyACM0, COM3, ...
	Name string
	// IsUSB is true for a USB serial port (a board's native USB or a
	// USB-serial bridge chip).
	IsUSB bool
	// VID and PID are the USB vendor and product ID, 4 lower-case hex
	// digits; empty if not USB.
	VID, PID string
	// Serial is the USB serial number, and Product the USB product
	// string, where the system reports them (Product often only on Linux).
	Serial, Product string
	// MicroPython is true if VID belongs to a maker of MicroPython boards
	// or of a USB-serial bridge chip common on such boards (see auto in
	// FindPort).
	MicroPython bool
}

// usbVendors ranks the USB vendors that auto considers: 0 for makers of
// MicroPython-capable boards, whose native USB is the board itself, 1 for
// USB-serial bridge chips, which may as well sit on some other device.
var usbVendors = map[string]int{
	"f055": 0, // MicroPython (pyboard, and the VID of many ports' USB)
	"2e8a": 0, // Raspberry Pi: RP2040, RP2350
	"303a": 0, // Espressif: ESP32-S2/S3/C3/C6 native USB
	"239a": 0, // Adafruit
	"1a86": 1, // WCH: CH340, CH343, CH9102
	"10c4": 1, // Silicon Labs: CP210x
	"0403": 1, // FTDI
}

// ListPorts lists the serial ports of this machine, sorted by name with
// numbers in numeric order (ttyACM2 before ttyACM10). It does not open
// them, and it does not probe USB devices actively: it reads what the
// system already knows. The list may be empty. On macOS, USB details need
// a build with cgo; without it, ports are listed by name only.
func ListPorts() ([]PortInfo, error) {
	ports, err := listPorts()
	if err != nil {
		return nil, wrap("list serial ports", err)
	}
	slices.SortStableFunc(ports, func(a, b PortInfo) int { return compareNatural(a.Name, b.Name) })
	return ports, nil
}

// portInfo fills a PortInfo from what an enumerator reports.
func portInfo(name string, isUSB bool, vid, pid, serial, product string) PortInfo {
	p := PortInfo{Name: name, IsUSB: isUSB}
	if isUSB {
		p.VID = normalizeOrLower(vid)
		p.PID = normalizeOrLower(pid)
		p.Serial = serial
		p.Product = product
		_, p.MicroPython = usbVendors[p.VID]
	}
	return p
}

// normalizeOrLower returns a USB ID as 4 lower-case hex digits, or, if it
// is not 1 to 4 hex digits, lower-cased as it is.
func normalizeOrLower(s string) string {
	if id, ok := normalizeUSBID(s); ok {
		return id
	}
	return strings.ToLower(s)
}

// FindPort picks a port from ports by a selector, one of the address forms
// (see ParseAddress):
//
//   - auto: the first USB port whose vendor ID is a known one: a board
//     maker (f055 MicroPython, 2e8a Raspberry Pi, 303a Espressif, 239a
//     Adafruit) before a USB-serial bridge (1a86 WCH, 10c4 Silicon Labs,
//     0403 FTDI), and otherwise in the order of ports. Ports that are not
//     USB, or of other vendors, are never picked: name them by path, usb:
//     or id:.
//   - usb:VID:PID: the one USB port with that vendor and product ID. If
//     several match, FindPort fails and lists them, rather than pick one:
//     two boards of a kind are common, and the wrong one would get the
//     commands. usb:VID:PID:SERIAL also matches the serial number.
//   - id:SERIAL: the one USB port with that serial number.
//
// IDs and serial numbers are compared ignoring case. PortInfo.MicroPython
// is not consulted: FindPort goes by VID. When nothing matches, the error
// matches fs.ErrNotExist.
func FindPort(ports []PortInfo, sel string) (PortInfo, error) {
	p, _, err := findPort(ports, sel)
	return p, err
}

// findPort is FindPort that also returns, for auto, the other candidates
// in order of preference.
func findPort(ports []PortInfo, sel string) (PortInfo, []PortInfo, error) {
	a, err := ParseAddress(sel)
	if err != nil {
		return PortInfo{}, nil, err
	}
	var match []PortInfo
	switch a.Scheme {
	case "auto":
		for _, p := range ports {
			if _, ok := usbVendors[normalizeOrLower(p.VID)]; ok && p.IsUSB {
				match = append(match, p)
			}
		}
		if len(match) == 0 {
			return PortInfo{}, nil, &notFoundError{"no MicroPython board found; webrepl ports lists what is connected"}
		}
		slices.SortStableFunc(match, func(x, y PortInfo) int {
			return cmp.Compare(usbVendors[normalizeOrLower(x.VID)], usbVendors[normalizeOrLower(y.VID)])
		})
		return match[0], match[1:], nil
	case "usb":
		for _, p := range ports {
			if p.IsUSB && normalizeOrLower(p.VID) == a.VID && normalizeOrLower(p.PID) == a.PID &&
				(a.SerialNumber == "" || strings.EqualFold(p.Serial, a.SerialNumber)) {
				match = append(match, p)
			}
		}
	case "id":
		for _, p := range ports {
			if p.IsUSB && strings.EqualFold(p.Serial, a.SerialNumber) {
				match = append(match, p)
			}
		}
	default:
		return PortInfo{}, nil, fmt.Errorf("webrepl: %q is not a port selector (want auto, usb:VID:PID[:SERIAL] or id:SERIAL)", sel)
	}
	switch len(match) {
	case 0:
		what := "USB device " + a.VID + ":" + a.PID
		if a.SerialNumber != "" {
			what += " with serial number " + a.SerialNumber
		}
		if a.Scheme == "id" {
			what = "USB device with serial number " + a.SerialNumber
		}
		return PortInfo{}, nil, &notFoundError{"no " + what + " found; webrepl ports lists what is connected"}
	case 1:
		return match[0], nil, nil
	}
	names := make([]string, len(match))
	for i, p := range match {
		names[i] = p.Name
		if p.Serial != "" {
			names[i] += " (serial " + p.Serial + ")"
		}
	}
	hint := "add the serial number (usb:VID:PID:SERIAL or id:SERIAL) or give the port's path"
	if a.Scheme == "id" || a.SerialNumber != "" {
		hint = "give the port's path"
	}
	return PortInfo{}, nil, fmt.Errorf("webrepl: %s matches %d ports: %s; %s", a, len(match), strings.Join(names, ", "), hint)
}

// notFoundError: no port matched. It matches fs.ErrNotExist.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string        { return "webrepl: " + e.msg }
func (e *notFoundError) Is(target error) bool { return target == fs.ErrNotExist }

// compareNatural compares strings with runs of digits compared as numbers,
// so that COM9 sorts before COM10; strings equal that way (a01, a1) compare
// as plain strings.
func compareNatural(a, b string) int {
	return cmp.Or(compareNaturalOnly(a, b), strings.Compare(a, b))
}

func compareNaturalOnly(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// digitRun returns the length of the run of ASCII digits at the start of s.
func digitRun(s string) int {
	n := 0
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		n++
	}
	return n
}
