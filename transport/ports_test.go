package transport

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

// Ports as ListPorts reports them on a desk with a few things plugged in.
var (
	ttyS0   = PortInfo{Name: "/dev/ttyS0"}
	ch340   = PortInfo{Name: "/dev/ttyUSB0", IsUSB: true, VID: "1a86", PID: "7523", Product: "USB Serial", MicroPython: true}
	cp2102  = PortInfo{Name: "/dev/ttyUSB1", IsUSB: true, VID: "10c4", PID: "ea60", Serial: "0001", Product: "CP2102 USB to UART Bridge Controller", MicroPython: true}
	ftdi    = PortInfo{Name: "/dev/ttyUSB2", IsUSB: true, VID: "0403", PID: "6001", Serial: "A50285BI", MicroPython: true}
	pico    = PortInfo{Name: "/dev/ttyACM1", IsUSB: true, VID: "2e8a", PID: "0005", Serial: "e6614c311b7e6f35", Product: "Board in FS mode", MicroPython: true}
	pico2   = PortInfo{Name: "/dev/ttyACM2", IsUSB: true, VID: "2e8a", PID: "0005", Serial: "e66141040396a52d", Product: "Board in FS mode", MicroPython: true}
	esp32s3 = PortInfo{Name: "/dev/ttyACM3", IsUSB: true, VID: "303a", PID: "1001", Serial: "F4:12:FA:5C:1E:D8", MicroPython: true}
	pyboard = PortInfo{Name: "/dev/ttyACM4", IsUSB: true, VID: "f055", PID: "9800", Serial: "206437A1", MicroPython: true}
	// Uppercase IDs, as some enumerators report them.
	feather = PortInfo{Name: "COM7", IsUSB: true, VID: "239A", PID: "80F4", Serial: "DF625857C7", MicroPython: true}
	// A USB modem of an unknown vendor.
	modem = PortInfo{Name: "/dev/ttyACM0", IsUSB: true, VID: "1bc7", PID: "1201", Serial: "x1"}
	// A non-USB port whose VID field is (oddly) set: still not auto's.
	fakeUSB = PortInfo{Name: "/dev/ttyAMA0", VID: "f055", PID: "9800"}
)

func TestFindPort(t *testing.T) {
	cases := []struct {
		name     string
		ports    []PortInfo
		sel      string
		want     string // the port's Name
		wantErr  string
		notExist bool // the error matches fs.ErrNotExist
	}{
		{name: "auto board before bridges", ports: []PortInfo{ttyS0, ch340, cp2102, ftdi, pico}, sel: "auto", want: pico.Name},
		{name: "auto pyboard", ports: []PortInfo{ch340, pyboard}, sel: "auto", want: pyboard.Name},
		{name: "auto espressif", ports: []PortInfo{ftdi, esp32s3}, sel: "auto", want: esp32s3.Name},
		{name: "auto adafruit uppercase", ports: []PortInfo{cp2102, feather}, sel: "auto", want: feather.Name},
		{name: "auto two boards: first in order", ports: []PortInfo{pico2, pico}, sel: "AUTO", want: pico2.Name},
		{name: "auto bridge when no board", ports: []PortInfo{ttyS0, modem, cp2102, ch340}, sel: "auto", want: cp2102.Name},
		{name: "auto ignores non-USB and unknown vendors", ports: []PortInfo{ttyS0, fakeUSB, modem}, sel: "auto", wantErr: "no MicroPython board found; webrepl ports lists what is connected", notExist: true},
		{name: "auto empty list", sel: "auto", wantErr: "no MicroPython board found", notExist: true},
		{name: "usb vid pid", ports: []PortInfo{ch340, cp2102, pico}, sel: "usb:10c4:ea60", want: cp2102.Name},
		{name: "usb unknown vendor", ports: []PortInfo{modem, pico}, sel: "usb:1bc7:1201", want: modem.Name},
		{name: "usb uppercase selector", ports: []PortInfo{pico, esp32s3}, sel: "usb:303A:1001", want: esp32s3.Name},
		{name: "usb uppercase port", ports: []PortInfo{pico, feather}, sel: "usb:239a:80f4", want: feather.Name},
		{name: "usb short ids", ports: []PortInfo{pico, ch340}, sel: "usb:2e8a:5", want: pico.Name},
		{name: "usb with serial", ports: []PortInfo{pico, pico2}, sel: "usb:2e8a:0005:e66141040396a52d", want: pico2.Name},
		{name: "usb serial ignores case", ports: []PortInfo{pico, pico2}, sel: "usb:2e8a:0005:E6614C311B7E6F35", want: pico.Name},
		{name: "usb serial with colons", ports: []PortInfo{esp32s3}, sel: "usb:303a:1001:f4:12:fa:5c:1e:d8", want: esp32s3.Name},
		{name: "usb ambiguous", ports: []PortInfo{pico, ch340, pico2}, sel: "usb:2e8a:0005", wantErr: "usb:2e8a:0005 matches 2 ports: /dev/ttyACM1 (serial e6614c311b7e6f35), /dev/ttyACM2 (serial e66141040396a52d); add the serial number"},
		{name: "usb none", ports: []PortInfo{pico}, sel: "usb:f055:9800", wantErr: "no USB device f055:9800 found; webrepl ports lists what is connected", notExist: true},
		{name: "usb wrong serial", ports: []PortInfo{pico}, sel: "usb:2e8a:0005:nope", wantErr: "no USB device 2e8a:0005 with serial number nope found", notExist: true},
		{name: "usb not on a non-USB port", ports: []PortInfo{fakeUSB}, sel: "usb:f055:9800", wantErr: "no USB device", notExist: true},
		{name: "id", ports: []PortInfo{ttyS0, pico, pico2, pyboard}, sel: "id:206437A1", want: pyboard.Name},
		{name: "id ignores case", ports: []PortInfo{pico, pico2}, sel: "id:E66141040396A52D", want: pico2.Name},
		{name: "id of a bridge", ports: []PortInfo{ftdi, cp2102}, sel: "id:A50285BI", want: ftdi.Name},
		{name: "id mac address", ports: []PortInfo{esp32s3}, sel: "id:F4:12:FA:5C:1E:D8", want: esp32s3.Name},
		{name: "id none", ports: []PortInfo{pico}, sel: "id:123", wantErr: "no USB device with serial number 123 found", notExist: true},
		{name: "id ambiguous", ports: []PortInfo{cp2102, {Name: "/dev/ttyUSB9", IsUSB: true, VID: "10c4", PID: "ea60", Serial: "0001"}}, sel: "id:0001", wantErr: "matches 2 ports"},
		{name: "not a selector", ports: []PortInfo{pico}, sel: "/dev/ttyACM1", wantErr: "not a port selector"},
		{name: "bad selector", ports: []PortInfo{pico}, sel: "usb:zz:1", wantErr: "bad USB vendor ID"},
		{name: "empty selector", ports: []PortInfo{pico}, sel: "id:", wantErr: "missing serial number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.ports)
			got, err := FindPort(tc.ports, tc.sel)
			if !slices.Equal(in, tc.ports) {
				t.Errorf("FindPort changed its input")
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "webrepl: ") {
					t.Fatalf("got %+v, %v; want an error about %q", got, err, tc.wantErr)
				}
				if errors.Is(err, fs.ErrNotExist) != tc.notExist {
					t.Errorf("errors.Is(%v, fs.ErrNotExist) = %v", err, !tc.notExist)
				}
				if got != (PortInfo{}) {
					t.Errorf("got %+v with the error", got)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != tc.want {
				t.Fatalf("got %s, want %s", got.Name, tc.want)
			}
		})
	}
}

// TestFindPortAutoOthers: auto reports the other candidates, best first,
// for OpenStream's log.
func TestFindPortAutoOthers(t *testing.T) {
	_, others, err := findPort([]PortInfo{ch340, ttyS0, pico2, modem, pico}, "auto")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range others {
		names = append(names, p.Name)
	}
	if want := []string{pico.Name, ch340.Name}; !slices.Equal(names, want) {
		t.Errorf("others = %v, want %v", names, want)
	}
}

func TestPortInfo(t *testing.T) {
	cases := []struct {
		name                      string
		isUSB                     bool
		vid, pid, serial, product string
		want                      PortInfo
	}{
		{"/dev/ttyACM0", true, "2E8A", "0005", "E661", "Board in FS mode",
			PortInfo{Name: "/dev/ttyACM0", IsUSB: true, VID: "2e8a", PID: "0005", Serial: "E661", Product: "Board in FS mode", MicroPython: true}},
		{"COM4", true, "10C4", "EA60", "0001", "",
			PortInfo{Name: "COM4", IsUSB: true, VID: "10c4", PID: "ea60", Serial: "0001", MicroPython: true}},
		{"/dev/ttyACM1", true, "1bc7", "1201", "", "",
			PortInfo{Name: "/dev/ttyACM1", IsUSB: true, VID: "1bc7", PID: "1201"}},
		{"/dev/ttyUSB3", true, "403", "6001", "", "",
			PortInfo{Name: "/dev/ttyUSB3", IsUSB: true, VID: "0403", PID: "6001", MicroPython: true}},
		{"/dev/ttyS0", false, "", "", "", "", PortInfo{Name: "/dev/ttyS0"}},
	}
	for _, tc := range cases {
		if got := portInfo(tc.name, tc.isUSB, tc.vid, tc.pid, tc.serial, tc.product); got != tc.want {
			t.Errorf("got %+v, want %+v", got, tc.want)
		}
	}
}

func TestCompareNatural(t *testing.T) {
	in := []string{"COM10", "/dev/ttyUSB0", "COM9", "/dev/ttyACM10", "/dev/ttyACM2", "COM1", "/dev/ttyACM02", "/dev/ttyACM", "/dev/ttyS0"}
	want := []string{"/dev/ttyACM", "/dev/ttyACM02", "/dev/ttyACM2", "/dev/ttyACM10", "/dev/ttyS0", "/dev/ttyUSB0", "COM1", "COM9", "COM10"}
	slices.SortFunc(in, compareNatural)
	if !slices.Equal(in, want) {
		t.Errorf("got %q, want %q", in, want)
	}
}

// TestListPorts: runs on whatever this machine has; there may be nothing.
func TestListPorts(t *testing.T) {
	ports, err := ListPorts()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		t.Logf("%+v", p)
		if p.Name == "" {
			t.Errorf("a port without a name: %+v", p)
		}
	}
	if !slices.IsSortedFunc(ports, func(a, b PortInfo) int { return compareNatural(a.Name, b.Name) }) {
		t.Error("not sorted by name")
	}
}
