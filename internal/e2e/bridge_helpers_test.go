//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"webrepl/bridge"
)

// Helpers of the bridge benchmarks (bridge_bench_test.go): a bridge in
// this process, the bridge's member count, and a process's memory and CPU
// time from /proc.

// startBridge serves the board at port with a bridge in this process on
// 127.0.0.1 and returns the board's ws:// address. It is closed when the
// test ends. clientBuffer is bridge.Options.ClientBuffer (0: the default).
func startBridge(tb testing.TB, port string, maxClients, clientBuffer int) string {
	tb.Helper()
	srv, err := bridge.New([]bridge.BoardConfig{{Port: port}},
		&bridge.Options{Password: password, MaxClients: maxClients, ClientBuffer: clientBuffer})
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), ln) }()
	tb.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			tb.Errorf("bridge: %v", err)
		}
	})
	return "ws://" + ln.Addr().String() + "/"
}

// waitMembers waits until the bridge at addr (a ws:// address) counts n
// logged-in clients on its first board, as /healthz reports.
func waitMembers(tb testing.TB, addr string, n int) {
	tb.Helper()
	health := healthURL(tb, addr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := members(health)
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the bridge counts %d logged-in clients (%v), want %d", got, err, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// memberCount returns how many logged-in clients the bridge at addr counts
// on its first board.
func memberCount(tb testing.TB, addr string) int {
	tb.Helper()
	n, err := members(healthURL(tb, addr))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// healthURL returns the /healthz address of the bridge serving addr.
func healthURL(tb testing.TB, addr string) string {
	tb.Helper()
	u, err := url.Parse(addr)
	if err != nil {
		tb.Fatal(err)
	}
	return "http://" + u.Host + "/healthz"
}

func members(health string) (int, error) {
	resp, err := http.Get(health)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		Boards []struct {
			Clients int `json:"clients"`
		} `json:"boards"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, err
	}
	if len(st.Boards) == 0 {
		return 0, fmt.Errorf("/healthz lists no board")
	}
	return st.Boards[0].Clients, nil
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// cpuTicks returns the CPU time (user plus system, all threads) process pid
// has used, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(b)
}

// parseStatTicks returns utime+stime (fields 14 and 15) of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses, so fields are counted from the last ')'.
func parseStatTicks(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat %.40q: no command name", b)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat %.40q: %d fields after the name", b, len(f))
	}
	var sum int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		sum += v
	}
	return sum, nil
}

// rss returns process pid's resident memory in bytes (VmRSS).
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// parseVmRSS returns the VmRSS line of /proc/PID/status in bytes.
func parseVmRSS(b []byte) (int64, error) {
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: odd VmRSS line %q", line)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc status: %w", err)
		}
		return v << 10, nil
	}
	return 0, fmt.Errorf("/proc status: no VmRSS line")
}

// settledRSS waits until process pid's resident memory stops changing (at
// most 64 KiB over three readings 100 ms apart, after at least 500 ms; at
// most 10 s) and returns it.
func settledRSS(pid int) (int64, error) {
	time.Sleep(500 * time.Millisecond)
	var last []int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := rss(pid)
		if err != nil {
			return 0, err
		}
		last = append(last, v)
		if n := len(last); n >= 3 {
			lo, hi := slices.Min(last[n-3:]), slices.Max(last[n-3:])
			if hi-lo <= 64<<10 || time.Now().After(deadline) {
				return v, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
