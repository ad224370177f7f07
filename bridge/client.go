package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"webrepl/protocol"
	"webrepl/transport"
)

// Notices for one client.
const (
	noticeObserver = "\r\n[webrepl bridge: another client controls this board; you are an observer and see its output]\r\n"
	noticeReadOnly = "\r\n[webrepl bridge: read-only session: what you type is not sent to the board]\r\n"
	noticeTaken    = "\r\n[webrepl bridge: another client took control; you are now an observer]\r\n"
	noticeControl  = "\r\n[webrepl bridge: you now control the board]\r\n"
	noticeRefused  = "\r\n[webrepl bridge: another client controls this board; try again later]\r\n"
	noticeFull     = "\r\n[webrepl bridge: this board has too many clients; try again later]\r\n"
)

// client is one WebREPL session on a board.
type client struct {
	l       *line
	id      uint64
	remote  string
	observe bool // asked to observe only
	conn    *transport.Conn
	dev     *protocol.Device
	out     *outQueue
	log     *slog.Logger

	control  atomic.Bool   // controls the board
	warned   atomic.Bool   // got the read-only notice
	pumped   chan struct{} // closed when pump returns
	kickOnce sync.Once
}

// hub is the set of a board's sessions.
type hub struct {
	l *line

	mu         sync.Mutex
	all        []*client // every session, logged in or not, in arrival order
	members    []*client // logged-in sessions, which receive output
	controller *client
	freed      chan struct{} // closed (and replaced) when the controller leaves
	nextID     uint64
	closed     bool
}

// Bounds on the sessions of a board that have not logged in yet, so that
// connections that never give a password cannot keep others out: per
// remote address, and in all.
const (
	maxPendingPerAddress = 16
	maxPending           = 64
)

// add registers a new session, or refuses it (with the reason) when too
// many sessions wait for their login, from its address or in all.
func (h *hub) add(c *client) (ok bool, why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false, "the bridge is shutting down"
	}
	host := hostOf(c.remote)
	pending, fromHost := 0, 0
	for _, x := range h.all {
		if !slices.Contains(h.members, x) {
			pending++
			if hostOf(x.remote) == host {
				fromHost++
			}
		}
	}
	switch {
	case fromHost >= maxPendingPerAddress:
		return false, "too many sessions from this address waiting to log in"
	case pending >= maxPending:
		return false, "too many sessions waiting to log in"
	}
	h.nextID++
	c.id = h.nextID
	h.all = append(h.all, c)
	return true, ""
}

// join makes a logged-in client a member, as controller or observer. It
// returns the notice of a refusal: the board has MaxClients members, or
// another client has control (Refuse policy). A client that wants control
// while another has it first waits a moment for that one to leave: a
// command-line client that connects right after the previous command's
// session ended should not find the board still taken.
func (h *hub) join(c *client) (refused string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.members) >= h.l.s.opts.MaxClients {
		c.log.Warn("refusing client: too many clients", "max", h.l.s.opts.MaxClients)
		return noticeFull
	}
	if !c.observe && h.controller != nil && h.l.s.opts.SecondController != TakeOver {
		c.log.Debug("waiting for the controller to leave", "for at most", h.l.s.opts.ControlWait)
		timer := time.NewTimer(h.l.s.opts.ControlWait)
		defer timer.Stop()
		for h.controller != nil && !h.closed {
			freed := h.freedChan()
			h.mu.Unlock()
			select {
			case <-freed:
				h.mu.Lock()
				continue
			case <-timer.C:
			}
			h.mu.Lock()
			break
		}
	}
	switch {
	case c.observe:
		c.send(noticeReadOnly)
		c.warned.Store(true)
	case h.controller == nil:
		h.setController(c)
	case h.l.s.opts.SecondController == Refuse:
		c.log.Info("refusing client: the board has a controller")
		return noticeRefused
	case h.l.s.opts.SecondController == TakeOver:
		old := h.controller
		old.control.Store(false)
		old.warned.Store(true)
		old.send(noticeTaken)
		h.setController(c)
		c.log.Info("client took control", "from", old.remote)
	default:
		c.send(noticeObserver)
		c.warned.Store(true)
	}
	h.members = append(h.members, c)
	c.log.Info("client logged in", "controller", c.control.Load())
	return ""
}

// freedChan returns the channel closed when the controller leaves. The
// caller holds h.mu.
func (h *hub) freedChan() chan struct{} {
	if h.freed == nil {
		h.freed = make(chan struct{})
	}
	return h.freed
}

func (h *hub) setController(c *client) {
	h.controller = c
	c.control.Store(true)
}

// remove forgets a session; if it controlled the board, the oldest member
// that wants control gets it.
func (h *hub) remove(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.all = slices.DeleteFunc(h.all, func(x *client) bool { return x == c })
	h.members = slices.DeleteFunc(h.members, func(x *client) bool { return x == c })
	if h.controller != c {
		return
	}
	h.controller = nil
	c.control.Store(false)
	close(h.freedChan())
	h.freed = nil
	for _, m := range h.members {
		if !m.observe {
			h.setController(m)
			m.send(noticeControl)
			m.log.Info("client now controls the board")
			return
		}
	}
}

// broadcast queues p (not to be changed afterwards) for every member;
// members that fell too far behind are disconnected. It never waits.
func (h *hub) broadcast(p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.members {
		if !c.out.push(p) {
			c.kick(c.tooSlow())
		}
	}
}

// tooSlow says why a client whose output queue overflowed is dropped.
func (c *client) tooSlow() string {
	return "too slow: more than " + strconv.Itoa(c.out.limit) + " bytes of output waited for it"
}

// count returns the number of sessions and of logged-in ones.
func (h *hub) count() (all, members int, controlled bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.all), len(h.members), h.controller != nil
}

// closeAll tells every member notice and ends every session, giving the
// clients half a second to take what is queued for them.
func (h *hub) closeAll(notice string) {
	h.mu.Lock()
	h.closed = true
	all := slices.Clone(h.all)
	for _, c := range h.members {
		c.out.push([]byte(notice))
	}
	h.mu.Unlock()
	for _, c := range all {
		c.out.finish()
	}
	grace := time.NewTimer(500 * time.Millisecond)
	defer grace.Stop()
	for _, c := range all {
		select {
		case <-c.pumped:
		case <-grace.C:
		}
		c.kick("")
	}
}

// send queues a notice for this client only.
func (c *client) send(notice string) {
	if !c.out.push([]byte(notice)) {
		c.kick(c.tooSlow())
	}
}

// kick ends the session.
func (c *client) kick(why string) {
	c.kickOnce.Do(func() {
		if why != "" {
			c.log.Warn("disconnecting client", "why", why)
		}
		c.out.close()
		c.conn.Close()
	})
}

// pump writes queued output to the client until the queue closes (or is
// finished and empty); then it ends the session. Chunks that queued up
// together go out joined, up to maxFrame bytes a frame: fewer frames and
// system calls when a client is behind.
func (c *client) pump() {
	defer close(c.pumped)
	defer c.kick("")
	var batch [][]byte
	var joined []byte
	for {
		batch = c.out.pop(batch)
		if batch == nil {
			return
		}
		for i := 0; i < len(batch); {
			p := batch[i]
			i++
			if i < len(batch) && len(p)+len(batch[i]) <= maxFrame {
				joined = append(joined[:0], p...)
				for ; i < len(batch) && len(joined)+len(batch[i]) <= maxFrame; i++ {
					joined = append(joined, batch[i]...)
				}
				p = joined
			}
			if _, err := c.dev.Write(p); err != nil {
				return
			}
		}
		clear(batch)
	}
}

// maxFrame bounds the text frames a pump joins chunks into.
const maxFrame = 64 << 10

// input is the REPL input of a client's Device.
type input struct{ c *client }

func (in input) Write(p []byte) (int, error) {
	c := in.c
	if !c.control.Load() {
		if c.warned.CompareAndSwap(false, true) {
			c.send(noticeReadOnly)
		}
		return len(p), nil // dropped: observers are read-only
	}
	if !c.l.typed(p) {
		return 0, net.ErrClosed
	}
	return len(p), nil
}

// serve runs one WebSocket session on the line.
func (l *line) serve(ctx context.Context, conn *transport.Conn, remote string, observe bool) {
	c := &client{
		l:       l,
		remote:  remote,
		observe: observe,
		conn:    conn,
		out:     newOutQueue(l.s.opts.ClientBuffer),
		pumped:  make(chan struct{}),
	}
	c.log = l.log.With("client", remote)
	dev, err := protocol.NewDevice(conn, &protocol.DeviceOptions{
		Extended: true,
		FS:       &boardFS{c: c},
		Input:    input{c},
		Authenticate: func(ctx context.Context, entry []byte) bool {
			return l.s.auth.check(ctx, hostOf(remote), func() bool { return passwordOK(entry, l.s.opts.Password) }, c.log)
		},
		OnLogin: func() {
			if notice := l.hub.join(c); notice != "" {
				// The notice goes out after the banner; then the pump
				// ends the session.
				c.send(notice)
				c.out.finish()
			}
		},
		GetVersion: l.boardVersion,
		Logf:       func(f string, a ...any) { c.log.Debug(fmt.Sprintf(f, a...)) },
	})
	if err != nil {
		c.log.Error("cannot start a session", "err", err)
		conn.Close()
		return
	}
	c.dev = dev
	if ok, why := l.hub.add(c); !ok {
		c.log.Warn("refusing client: " + why)
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		conn.WriteMessage(wctx, false, []byte("\r\n[webrepl bridge: "+why+"; try again later]\r\n"))
		cancel()
		conn.Close()
		return
	}
	c.log.Debug("client connected", "observe", observe)
	go c.pump()
	loginTimer := time.AfterFunc(l.s.opts.LoginTimeout, func() {
		if !dev.LoggedIn() {
			c.kick("no login within " + l.s.opts.LoginTimeout.String())
		}
	})
	err = dev.Serve(ctx)
	loginTimer.Stop()
	l.hub.remove(c)
	c.kick("")
	<-c.pumped
	switch {
	case err == nil, errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled):
		c.log.Debug("client left")
	case errors.Is(err, protocol.ErrAccessDenied):
		// logged by the throttle
	default:
		c.log.Info("client left", "err", err)
	}
}
