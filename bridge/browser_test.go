package bridge_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"webrepl/bridge"
	"webrepl/internal/browser/browsertest"
	"webrepl/internal/leakcheck"
)

// terminalScript is what webrepl.html does, in a real browser: open a
// WebSocket to the board, type the password at the prompt, run a line,
// and report what the terminal shows (or how the connection failed).
const terminalScript = `
const ws = new WebSocket(BRIDGE);
ws.binaryType = "arraybuffer";
let text = "";
let sent = false, typed = false;
const result = await new Promise((resolve) => {
  ws.onerror = () => resolve("error");
  ws.onclose = (e) => resolve("close:" + e.code + ":" + text);
  ws.onmessage = (e) => {
    if (typeof e.data !== "string") return;
    text += e.data;
    if (!sent && text.endsWith("Password: ")) { sent = true; ws.send(PASSWORD + "\r"); }
    if (!typed && text.includes("WebREPL connected")) { typed = true; ws.send("print('from', 'chromium', 6*7)\r"); }
    if (text.includes("from chromium 42")) resolve("ok:" + text);
  };
});
report(result);
ws.close();
done();
`

// browserPage is the terminal page; it fetches the bridge's address and
// the password from /config on its own origin (the test sets them once the
// bridge runs, as the page's origin must be known to the bridge first).
func browserPage(config *atomic.Value) browsertest.Page {
	return browsertest.Page{
		HTML: "<pre id=term></pre>",
		Script: "const cfg = await (await fetch('/config')).json();\n" +
			"const BRIDGE = cfg.url, PASSWORD = cfg.password;\n" + terminalScript,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/config" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, config.Load().(string))
		}),
	}
}

func browserConfig(url string) string {
	b, _ := json.Marshal(map[string]string{"url": url, "password": testPassword})
	return string(b)
}

func TestBrowserOnAnotherSiteIsRefused(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	var config atomic.Value
	site := browsertest.Serve(t, browserPage(&config))
	var logs syncBuffer
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{Logger: newLogger(&logs)})
	config.Store(browserConfig(br.URL))
	res := site.Run()
	if len(res.Reports) != 1 || res.Reports[0] != "error" && !strings.HasPrefix(res.Reports[0], "close:1006") {
		t.Fatalf("a page from %s: %q, want the connection refused", res.Origin, res.Reports)
	}
	// It was the bridge that refused it, for its origin (not a page or
	// browser failing to reach it).
	if !strings.Contains(logs.String(), "WebSocket refused") || !strings.Contains(logs.String(), "origin="+res.Origin) {
		t.Fatalf("the bridge did not log refusing %s:\n%s", res.Origin, logs.String())
	}
}

func TestBrowserOnAnAllowedSite(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := startBoard(t, nil)
	var config atomic.Value
	site := browsertest.Serve(t, browserPage(&config))
	br := startBridge(t, []bridge.BoardConfig{cfg}, &bridge.Options{AllowOrigins: []string{site.URL}})
	config.Store(browserConfig(br.URL))
	res := site.Run()
	if len(res.Reports) != 1 || !strings.HasPrefix(res.Reports[0], "ok:") {
		t.Fatalf("a page from the allowed %s: %q", res.Origin, res.Reports)
	}
	if !strings.Contains(res.Reports[0], "WebREPL connected") {
		t.Fatalf("terminal %q", res.Reports[0])
	}
}

func TestBrowserShowsThePlainPage(t *testing.T) {
	leakcheck.Check(t)
	_, cfg := newFakeBoard(t)
	cfg.Name = "desk"
	br := startBridge(t, []bridge.BoardConfig{cfg}, nil)
	dom := browsertest.DumpDOM(t, "http://"+br.Addr+"/")
	if !contains(dom, "webrepl bridge", "ws://"+br.Addr+"/desk", "connected") {
		t.Fatalf("the page as Chromium shows it:\n%s", dom)
	}
}
