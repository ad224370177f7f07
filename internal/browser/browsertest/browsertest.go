package browsertest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"webrepl/internal/browser"
)

// DefaultTimeout bounds a run when Page.Timeout is zero, and every
// DumpDOM.
const DefaultTimeout = 30 * time.Second

// Paths of the kit's own endpoints on the page's origin. A page served by
// Page.Handler gets report and done by including
// <script src="/_browsertest/kit.js"></script> (ScriptPath).
const (
	KitPrefix  = "/_browsertest/"
	ScriptPath = KitPrefix + "kit.js"
)

// logLines is how much of Chromium's log a failure quotes.
const logLines = 40

// Page is what Run opens in Chromium.
type Page struct {
	// HTML is markup for the body of the document served at "/". The kit
	// writes the doctype, head and body tags around it.
	HTML string
	// Script runs after HTML has been parsed, as the body of an async
	// function: it may use await, and an exception it throws fails the
	// test. It must not contain "</script". Empty means none; the page
	// must then call done() from HTML's own scripts.
	Script string
	// Path is where Chromium goes on the kit's origin. Empty means "/".
	Path string
	// Handler serves every path other than the kit's own (KitPrefix) and
	// "/" (when HTML or Script is set), on the page's origin: same-origin
	// requests, WebSocket upgrades, or whole pages of its own (see
	// ScriptPath). Nil means 404 for those paths.
	Handler http.Handler
	// Timeout bounds the run, from starting Chromium to done(). Zero
	// means DefaultTimeout.
	Timeout time.Duration
}

// Result is what a page reported.
type Result struct {
	// Origin is the page's origin, as in Site.URL.
	Origin string
	// Reports holds the values passed to report() (and done(value)), in
	// the order the page made them.
	Reports []string
}

// Site is a page served on an origin of its own, not yet (or already)
// run. Its URL is known before Chromium starts.
//
// Run must be called at most once, from the test's goroutine.
type Site struct {
	// URL is the page's origin, "http://127.0.0.1:PORT", without a
	// trailing slash: what Chromium sends as the Origin header of the
	// page's cross-origin requests and WebSockets.
	URL string

	tb       testing.TB
	page     Page
	chromium string // executable path
	doc      []byte // the document at "/", or nil

	mu       sync.Mutex // guards the fields below
	ran      bool
	next     int           // seq expected of the page's next message
	reports  []string      // report() values so far
	pageErr  string        // why the run failed, once failed is closed
	finished bool          // done or failed has been closed
	done     chan struct{} // closed by done()
	failed   chan struct{} // closed by the page's first error
}

// Run serves page on a new loopback origin, opens it in a fresh headless
// Chromium, and returns the page's reports once it calls done(). It is
// Serve(tb, page).Run().
func Run(tb testing.TB, page Page) Result {
	tb.Helper()
	return Serve(tb, page).Run()
}

// Serve serves page on a new loopback origin until the test ends, without
// starting Chromium yet. It skips or fails the test, as the package doc
// says, when there is no Chromium.
func Serve(tb testing.TB, page Page) *Site {
	tb.Helper()
	if strings.Contains(strings.ToLower(page.Script), "</script") {
		tb.Fatal(`browsertest: Page.Script contains "</script", which would end it early`)
	}
	s := &Site{
		tb:       tb,
		page:     page,
		chromium: find(tb),
		done:     make(chan struct{}),
		failed:   make(chan struct{}),
	}
	if page.HTML != "" || page.Script != "" {
		s.doc = document(page)
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Run opens the site in a fresh headless Chromium and returns the page's
// reports once it calls done(). Chromium is killed before Run returns.
//
// The test fails, quoting the end of Chromium's log, if the page throws,
// if Chromium exits, or if done() does not come within Page.Timeout.
func (s *Site) Run() Result {
	tb := s.tb
	tb.Helper()
	s.mu.Lock()
	ran := s.ran
	s.ran = true
	s.mu.Unlock()
	if ran {
		tb.Fatal("browsertest: Site.Run called twice; Serve a new Site for each run")
	}

	timeout := s.page.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	path := s.page.Path
	if path == "" {
		path = "/"
	}
	p := start(tb, s.chromium, s.URL+path)
	defer p.Close()
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	select {
	case <-s.done:
		p.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		return Result{Origin: s.URL, Reports: append([]string(nil), s.reports...)}
	case <-s.failed:
		p.Close()
		s.mu.Lock()
		msg, reports := s.pageErr, append([]string(nil), s.reports...)
		s.mu.Unlock()
		tb.Fatalf("browsertest: the page at %s failed: %s\nreports before that: %q%s", s.URL+path, msg, reports, logTail(p))
	case <-p.Done():
		tb.Fatalf("browsertest: chromium exited (%v) before the page at %s called done(); reports: %q%s",
			p.Err(), s.URL+path, s.reportsNow(), logTail(p))
	case <-timer.C:
		p.Close()
		tb.Fatalf("browsertest: the page at %s did not call done() within %v; reports: %q%s",
			s.URL+path, timeout, s.reportsNow(), logTail(p))
	}
	panic("unreachable") // tb.Fatalf does not return
}

func (s *Site) reportsNow() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reports...)
}

// DumpDOM runs `chromium --headless --dump-dom url` (with the kit's other
// switches and a fresh profile) and returns the DOM it prints: the page as
// serialized after its load event, so scripts that ran by then are
// reflected. The test fails if Chromium fails or takes longer than
// DefaultTimeout, and is skipped or failed as the package doc says when
// there is no Chromium.
func DumpDOM(tb testing.TB, url string) string {
	tb.Helper()
	p := start(tb, find(tb), "--dump-dom", url)
	defer p.Close()
	timer := time.NewTimer(DefaultTimeout)
	defer timer.Stop()
	select {
	case <-p.Done():
	case <-timer.C:
		p.Close()
		tb.Fatalf("browsertest: chromium --dump-dom %s did not finish within %v%s", url, DefaultTimeout, logTail(p))
	}
	if err := p.Err(); err != nil {
		tb.Fatalf("browsertest: chromium --dump-dom %s: %v%s", url, err, logTail(p))
	}
	out, err := p.Stdout()
	if err != nil {
		tb.Fatal(err)
	}
	return string(out)
}

// find returns the Chromium executable, or skips the test (fails it when
// $CI is set).
func find(tb testing.TB) string {
	tb.Helper()
	path, err := browser.Find()
	if err == nil {
		return path
	}
	if errors.Is(err, browser.ErrNotFound) && os.Getenv("CI") == "" {
		tb.Skipf("browsertest: skipping, no headless browser: %v", err)
	}
	tb.Fatalf("browsertest: %v (CI is set, and CI installs Chromium: see .ci/run)", err)
	return ""
}

// start starts Chromium on a profile under tb.TempDir(), killed when the
// test ends at the latest.
func start(tb testing.TB, chromium string, args ...string) *browser.Process {
	tb.Helper()
	p, err := browser.Start(&browser.Options{Path: chromium, Dir: tb.TempDir()}, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	return p
}

// logTail returns the last lines of Chromium's stderr, ready to append to
// a failure message. The page's console messages are there ("CONSOLE");
// D-Bus complaints, which every machine without a session bus gets, are
// left out.
func logTail(p *browser.Process) string {
	b, err := p.Stderr()
	if err != nil {
		return fmt.Sprintf("\n(chromium's stderr: %v)", err)
	}
	var lines []string
	dropped := 0
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.Contains(l, "dbus/") || strings.Contains(l, "D-Bus") {
			dropped++
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > logLines {
		lines = lines[len(lines)-logLines:]
	}
	msg := "\nchromium's stderr ends with"
	if dropped > 0 {
		msg += fmt.Sprintf(" (%d D-Bus lines left out)", dropped)
	}
	return msg + ":\n" + strings.Join(lines, "\n")
}

// document returns the page at "/": the kit's script in the head, then
// HTML, then Script in an async function whose exception fails the run.
func document(page Page) []byte {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>browsertest</title>\n")
	b.WriteString("<link rel=\"icon\" href=\"data:,\">\n") // no /favicon.ico request
	b.WriteString("<script src=\"" + ScriptPath + "\"></script>\n</head><body>\n")
	b.WriteString(page.HTML)
	if page.Script != "" {
		b.WriteString("\n<script>\n(async () => {\n")
		b.WriteString(page.Script)
		b.WriteString("\n})().catch(__browsertest.fail);\n</script>")
	}
	b.WriteString("\n</body></html>\n")
	return []byte(b.String())
}

// kitJS defines report and done. Every message carries a sequence number
// and goes out only after the previous one was answered, so the server
// sees them in order and notices one that went missing.
const kitJS = `"use strict";
(() => {
  const prefix = "` + KitPrefix + `";
  let queue = Promise.resolve();
  let seq = 0;
  const send = (kind, body) => {
    const n = seq++;
    queue = queue
      .then(() => fetch(prefix + kind + "?seq=" + n, {method: "POST", body: body, cache: "no-store"}))
      .then(r => { if (!r.ok) throw new Error("HTTP " + r.status); })
      .catch(e => console.error("browsertest: " + kind + " #" + n + " was not delivered: " + e));
    return queue;
  };
  const text = v => {
    if (typeof v === "string") return v;
    let s;
    try { s = JSON.stringify(v); } catch (e) { /* a cycle, a BigInt: fall back */ }
    return s === undefined ? String(v) : s;
  };
  const describe = e => (e instanceof Error && e.stack) ? String(e.stack) : text(e);
  const fail = e => send("error", describe(e));
  window.report = v => send("report", text(v));
  window.done = (...v) => {
    if (v.length > 0) window.report(v[0]);
    return send("done", "");
  };
  window.__browsertest = {fail: fail};
  window.addEventListener("error", e => send("error",
    e.error !== undefined && e.error !== null ? describe(e.error) : e.message + " (" + e.filename + ":" + e.lineno + ")"));
  window.addEventListener("unhandledrejection", e => send("error", "unhandled rejection: " + describe(e.reason)));
})();
`

// maxMessage bounds one message from the page.
const maxMessage = 4 << 20

func (s *Site) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case r.URL.Path == ScriptPath:
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		io.WriteString(w, kitJS)
	case strings.HasPrefix(r.URL.Path, KitPrefix):
		s.serveMessage(w, r, strings.TrimPrefix(r.URL.Path, KitPrefix))
	case r.URL.Path == "/" && s.doc != nil:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(s.doc)
	case s.page.Handler != nil:
		s.page.Handler.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// serveMessage takes a report, done or error from the page.
func (s *Site) serveMessage(w http.ResponseWriter, r *http.Request, kind string) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMessage))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	seq, err := strconv.Atoi(r.URL.Query().Get("seq"))
	if err != nil {
		http.Error(w, "bad seq", http.StatusBadRequest)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return // after done() or a failure, the page no longer counts
	}
	if seq != s.next {
		s.failLocked(fmt.Sprintf("the kit got message #%d (%s) when #%d was due: a report was lost", seq, kind, s.next))
		return
	}
	s.next++
	switch kind {
	case "report":
		s.reports = append(s.reports, string(body))
	case "done":
		s.finished = true
		close(s.done)
	case "error":
		s.failLocked(string(body))
	default:
		http.NotFound(w, r)
	}
}

func (s *Site) failLocked(msg string) {
	s.pageErr = msg
	s.finished = true
	close(s.failed)
}
