package rendezvous

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// The landing page: a share link is an http URL on this server
// (transfer.Link.String), so the server also speaks just enough HTTP on its
// rendezvous port to serve a page there. It tells the recipient how to open
// the link with machsend; the secret after '#' stays in the browser (a URL's
// fragment is never sent), so the page never learns what is shared.
//
// A connection is handed to HTTP when its first byte cannot begin a
// request of the rendezvous protocol (which starts with '{') but can begin
// GET or HEAD. Web connections are bounded on their own (webMax at once,
// webPerAddr per address) and by the timeouts of webServer, so a flood of
// browsers or slow readers cannot take the rendezvous clients' places.

//go:embed landing
var landingFS embed.FS

var landingPage = template.Must(template.ParseFS(landingFS, "landing/page.html"))

const (
	webMax     = 64 // web connections at once
	webPerAddr = 8  // per source address
	// webHeaderTimeout bounds a request's head; webIdle a kept-alive
	// connection between requests.
	webHeaderTimeout = 5 * time.Second
	webIdle          = 30 * time.Second
)

// looksHTTP says whether a connection's first bytes start a web request.
func looksHTTP(first []byte) bool {
	return len(first) > 0 && (first[0] == 'G' || first[0] == 'H')
}

// webFront serves the landing pages of a server.
type webFront struct {
	srv     *Server
	ln      *chanListener
	http    *http.Server
	perAddr *addrCount
	slots   chan struct{}
	once    sync.Once
}

func newWebFront(s *Server) *webFront {
	w := &webFront{srv: s, ln: newChanListener(), perAddr: newAddrCount(webPerAddr), slots: make(chan struct{}, webMax)}
	w.http = &http.Server{Handler: w, ReadHeaderTimeout: webHeaderTimeout, ReadTimeout: webHeaderTimeout,
		WriteTimeout: 10 * time.Second, IdleTimeout: webIdle, MaxHeaderBytes: 8 << 10,
		ErrorLog: log.New(io.Discard, "", 0)}
	return w
}

// handOff takes a connection the loop found to speak HTTP (see front).
func (w *webFront) handOff(c net.Conn, remote, _ netip.AddrPort, first []byte) {
	w.once.Do(func() { go w.http.Serve(w.ln) })
	if !w.perAddr.take(remote.Addr()) {
		c.Close()
		w.srv.Stats.Rejected.Add(1)
		return
	}
	select {
	case w.slots <- struct{}{}:
	default:
		w.perAddr.put(remote.Addr())
		c.Close()
		w.srv.Stats.Rejected.Add(1)
		return
	}
	release := func() { <-w.slots; w.perAddr.put(remote.Addr()) }
	pc := &prefixConn{Conn: c, first: bytes.Clone(first), release: release}
	if !w.ln.offer(pc) {
		pc.Close()
	}
}

func (w *webFront) close() {
	w.ln.Close()
	w.http.Close()
}

// ServeHTTP serves the landing page of a session, its script and style,
// and a short page about the server at /.
func (w *webFront) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	h := rw.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(rw, "only GET", http.StatusMethodNotAllowed)
		return
	}
	switch p := r.URL.Path; {
	case p == "/landing.js" || p == "/landing.css":
		http.ServeFileFS(rw, r, landingFS, "landing"+p)
	case p == "/":
		w.page(rw, "")
	case strings.HasPrefix(p, "/s/"):
		id := strings.TrimPrefix(p, "/s/")
		if !validSessionID(id) {
			http.Error(rw, "not a machsend link: the session id after /s/ must be 32 hex digits", http.StatusNotFound)
			return
		}
		w.page(rw, id)
	default:
		http.NotFound(rw, r)
	}
}

// pageData is what the landing page template shows.
type pageData struct {
	Session string // "" on the server's own page
	Open    bool   // the session is being shared now
}

func (w *webFront) page(rw http.ResponseWriter, id string) {
	d := pageData{Session: id}
	if id != "" {
		w.srv.mu.Lock()
		_, d.Open = w.srv.sessions[id]
		w.srv.mu.Unlock()
	}
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	if d.Session != "" && !d.Open {
		rw.WriteHeader(http.StatusNotFound)
	}
	_ = landingPage.Execute(rw, d)
}

// chanListener is a net.Listener fed by handOff.
type chanListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan net.Conn, webMax), done: make(chan struct{})}
}

// offer hands c to the web server without waiting (the caller is an event
// loop): the queue holds webMax, as many as there are web slots, so it is
// full only if the web server stopped accepting.
func (l *chanListener) offer(c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.conns <- c:
		return true
	default:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{} }

// prefixConn reads first before the socket, and frees its web slot once
// closed.
type prefixConn struct {
	net.Conn
	first   []byte
	release func()
	once    sync.Once
}

func (c *prefixConn) inner() net.Conn { return c.Conn }

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(b, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// CloseWrite half-closes the connection where it can.
func (c *prefixConn) CloseWrite() error { return closeWrite(c.Conn) }

func (c *prefixConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
