package browsertest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"webrepl/internal/browser"
	"webrepl/internal/browser/browsertest"
	"webrepl/internal/leakcheck"
)

func TestUserAgent(t *testing.T) {
	leakcheck.Check(t)
	res := browsertest.Run(t, browsertest.Page{
		Script: `report(navigator.userAgent); done(location.origin);`,
	})
	if len(res.Reports) != 2 {
		t.Fatalf("reports = %q; want the user agent and the origin", res.Reports)
	}
	if ua := res.Reports[0]; !strings.Contains(ua, "HeadlessChrome/") {
		t.Errorf("navigator.userAgent = %q; want HeadlessChrome/", ua)
	}
	if !strings.HasPrefix(res.Origin, "http://127.0.0.1:") {
		t.Errorf("Origin = %q; want http://127.0.0.1:PORT", res.Origin)
	}
	if got := res.Reports[1]; got != res.Origin {
		t.Errorf("location.origin = %q; want %q", got, res.Origin)
	}
}

// TestReports checks that many reports arrive in order, that values other
// than strings arrive as JSON, and that HTML and Script both run.
func TestReports(t *testing.T) {
	leakcheck.Check(t)
	res := browsertest.Run(t, browsertest.Page{
		HTML: `<p id="greeting">hello</p>`,
		Script: `
report(document.getElementById("greeting").textContent);
report({a: 1, b: [true, null]});
report(undefined);
for (let i = 0; i < 200; i++) report(i);
await new Promise(resolve => setTimeout(resolve, 0));
done("last");`,
	})
	want := []string{"hello", `{"a":1,"b":[true,null]}`, "undefined"}
	for i := 0; i < 200; i++ {
		want = append(want, fmt.Sprint(i))
	}
	want = append(want, "last")
	if strings.Join(res.Reports, "|") != strings.Join(want, "|") {
		t.Errorf("reports = %q\nwant %q", res.Reports, want)
	}
}

// TestSameOriginHandler checks that Page.Handler serves the page's
// origin, both for a fetch from the kit's page and for a page of its own
// that includes the kit's script.
func TestSameOriginHandler(t *testing.T) {
	leakcheck.Check(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/answer", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "42")
	})
	mux.HandleFunc("/app.html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<!DOCTYPE html><script src="`+browsertest.ScriptPath+`"></script>
<script>fetch("/api/answer").then(r => r.text()).then(done);</script>`)
	})

	res := browsertest.Run(t, browsertest.Page{
		Script:  `done(await (await fetch("/api/answer")).text());`,
		Handler: mux,
	})
	if len(res.Reports) != 1 || res.Reports[0] != "42" {
		t.Errorf("kit page: reports = %q; want [42]", res.Reports)
	}

	res = browsertest.Run(t, browsertest.Page{Path: "/app.html", Handler: mux})
	if len(res.Reports) != 1 || res.Reports[0] != "42" {
		t.Errorf("handler's page: reports = %q; want [42]", res.Reports)
	}
}

// TestCrossOriginWebSocket opens, from the kit's page, a WebSocket to a
// server on another origin that checks Origin against an allow-list, the
// check the bridge must make.
func TestCrossOriginWebSocket(t *testing.T) {
	for _, tt := range []struct {
		name      string
		allowPage bool // put the kit's origin on the allow-list
		want      []string
	}{
		{name: "allowed", allowPage: true, want: []string{"open", "message:hello"}},
		// A refused handshake fails the WebSocket: error, then close with
		// 1006 (RFC 6455 section 7.1.5: no close frame was received).
		{name: "refused", allowPage: false, want: []string{"error", "close:1006"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			ws := newWSServer(t, "http://allowed.example")
			site := browsertest.Serve(t, browsertest.Page{
				Script: `
const ws = new WebSocket(` + jsString(ws.url+"/ws") + `);
ws.onopen = () => report("open");
ws.onmessage = e => done("message:" + e.data);
ws.onerror = () => report("error");
ws.onclose = e => done("close:" + e.code);`,
			})
			if site.URL == ws.url {
				t.Fatalf("the page and the WebSocket server share the origin %s", site.URL)
			}
			if tt.allowPage {
				ws.allow(site.URL)
			}

			res := site.Run()
			if strings.Join(res.Reports, "|") != strings.Join(tt.want, "|") {
				t.Errorf("reports = %q; want %q", res.Reports, tt.want)
			}
			if got := ws.seen(); len(got) != 1 || got[0] != site.URL {
				t.Errorf("the server saw Origin %q; want [%q], the page's origin", got, site.URL)
			}
		})
	}
}

func TestDumpDOM(t *testing.T) {
	leakcheck.Check(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!DOCTYPE html><html><head><title>bridge</title></head><body>
<h1>Boards</h1><ul id="boards"></ul>
<script>document.getElementById("boards").innerHTML = "<li>esp32</li>";</script>
</body></html>`)
	}))
	defer srv.Close()

	dom := browsertest.DumpDOM(t, srv.URL+"/")
	for _, want := range []string{"<title>bridge</title>", "<h1>Boards</h1>", `<ul id="boards"><li>esp32</li></ul>`} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %s:\n%s", want, dom)
		}
	}
}

// TestFailures checks that what goes wrong in the page fails the test,
// with a message that says what.
func TestFailures(t *testing.T) {
	for _, tt := range []struct {
		name string
		page browsertest.Page
		want []string // in the failure message
	}{
		{
			name: "exception in Script",
			page: browsertest.Page{Script: `report("before"); throw new Error("boom");`},
			want: []string{"Error: boom", `reports before that: ["before"]`},
		},
		{
			name: "uncaught error in HTML",
			page: browsertest.Page{HTML: `<script>noSuchFunction();</script>`},
			want: []string{"ReferenceError: noSuchFunction is not defined"},
		},
		{
			name: "unhandled rejection",
			page: browsertest.Page{HTML: `<script>Promise.reject("nope");</script>`},
			want: []string{"unhandled rejection: nope"},
		},
		{
			// Whether "waiting" arrives within the timeout depends on how
			// fast Chromium starts; the reports' place in a failure
			// message is checked by the first case.
			name: "no done",
			page: browsertest.Page{Script: `report("waiting");`, Timeout: 2 * time.Second},
			want: []string{"did not call done() within 2s", "reports: [", "chromium's stderr ends with"},
		},
		{
			name: "page of the handler not found",
			page: browsertest.Page{Path: "/missing", Timeout: time.Second},
			want: []string{"did not call done()"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			f := runFake(t, func(tb testing.TB) { browsertest.Run(tb, tt.page) })
			if f.skipped != "" {
				t.Skip(f.skipped)
			}
			if f.fatal == "" {
				t.Fatal("Run did not fail the test")
			}
			for _, w := range tt.want {
				if !strings.Contains(f.fatal, w) {
					t.Errorf("failure message lacks %q:\n%s", w, f.fatal)
				}
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	leakcheck.Check(t)
	f := runFake(t, func(tb testing.TB) {
		s := browsertest.Serve(tb, browsertest.Page{Script: `done();`})
		s.Run()
		s.Run()
	})
	if f.skipped != "" {
		t.Skip(f.skipped)
	}
	if !strings.Contains(f.fatal, "Site.Run called twice") {
		t.Errorf("second Run: failure %q; want Site.Run called twice", f.fatal)
	}
}

// TestNoChromium checks the skip, and the failure under CI, when there is
// no Chromium.
func TestNoChromium(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-chromium")
	t.Setenv(browser.EnvPath, missing)
	calls := map[string]func(tb testing.TB){
		"Run":     func(tb testing.TB) { browsertest.Run(tb, browsertest.Page{Script: `done();`}) },
		"DumpDOM": func(tb testing.TB) { browsertest.DumpDOM(tb, "about:blank") },
	}
	for name, call := range calls {
		t.Run(name+"/local", func(t *testing.T) {
			t.Setenv("CI", "")
			f := runFake(t, call)
			if f.fatal != "" || !strings.Contains(f.skipped, missing) {
				t.Errorf("skipped %q, failed %q; want a skip naming %s", f.skipped, f.fatal, missing)
			}
		})
		t.Run(name+"/CI", func(t *testing.T) {
			t.Setenv("CI", "true")
			f := runFake(t, call)
			if f.skipped != "" || !strings.Contains(f.fatal, missing) || !strings.Contains(f.fatal, "CI") {
				t.Errorf("skipped %q, failed %q; want a failure naming %s and CI", f.skipped, f.fatal, missing)
			}
		})
	}
}

// fakeTB records the first Fatal or Skip instead of ending the test; like
// the real ones, they end the calling goroutine. The rest (Cleanup,
// TempDir, Logf, Helper) is the real test's.
type fakeTB struct {
	testing.TB
	mu      sync.Mutex
	fatal   string
	skipped string
}

func (f *fakeTB) Fatal(args ...any) { f.end(&f.fatal, fmt.Sprint(args...)) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.end(&f.fatal, fmt.Sprintf(format, args...))
}
func (f *fakeTB) FailNow()         { f.end(&f.fatal, "FailNow") }
func (f *fakeTB) Skip(args ...any) { f.end(&f.skipped, fmt.Sprint(args...)) }
func (f *fakeTB) Skipf(format string, args ...any) {
	f.end(&f.skipped, fmt.Sprintf(format, args...))
}
func (f *fakeTB) SkipNow() { f.end(&f.skipped, "SkipNow") }

func (f *fakeTB) end(field *string, msg string) {
	f.mu.Lock()
	*field = msg
	f.mu.Unlock()
	runtime.Goexit()
}

// runFake runs fn with a fakeTB on a goroutine of its own and returns once
// fn has returned or ended through Fatal or Skip.
func runFake(t *testing.T, fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f
}
