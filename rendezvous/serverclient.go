package rendezvous

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"
	"golang.org/x/time/rate"
)

// client is one rendezvous connection, owned by one event loop (loop.go),
// or by its own goroutine where the server has no event loops
// (conn_other.go).
type client struct {
	srv     *Server
	loop    *loop
	remote  netip.AddrPort
	local   netip.AddrPort
	tcp     *net.TCPConn // a TLS client's TCP connection (its plaintext is served); nil otherwise
	limiter *rate.Limiter
	waiting atomic.Int32 // slow requests (probes) in flight

	// The loop goroutine's own state.
	in       []byte    // an incomplete line, or what follows a pause
	lastRead time.Time // for the idle timeout
	resumeAt time.Time
	paused   bool // reading paused for the request rate
	reserved bool // the next request already took its rate token
	gone     bool // closed by the loop
	spoke    bool // sent its first bytes (which may say it is a browser)

	// How the socket is written (clientio_unix.go, conn_other.go): any
	// goroutine may send to the client.
	clientIO

	// Session state; guarded by srv.mu.
	owned    int              // sessions it created and still holds
	sessions map[string]*pair // id -> its place there; nil until the first session
	probeKey string           // names its probe connections (probed.go); "" until its hello
	probed   []netip.Addr     // addresses its probe connections came from (probed.go)
}

// wireRequest is a JSON-RPC 2.0 request or notification (no id).
type wireRequest struct {
	ID     json.RawMessage  `json:"id"`
	Method string           `json:"method"`
	Params *json.RawMessage `json:"params"`
}

// encoder is a pooled buffer with its JSON encoder.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

// message encodes head, then key and v as a JSON member, as one line.
func (c *client) message(head []byte, key string, v any) {
	e := encoders.Get().(*encoder)
	defer encoders.Put(e)
	e.buf.Reset()
	e.buf.Write(head)
	e.buf.WriteString(key)
	if err := e.enc.Encode(v); err != nil {
		c.srv.log.Error("encoding a reply failed", "err", err)
		return
	}
	e.buf.Truncate(e.buf.Len() - 1) // Encode's newline
	e.buf.WriteString("}\n")
	c.send(e.buf.Bytes())
	if e.buf.Cap() > 64<<10 {
		e.buf = bytes.Buffer{} // do not pool a rare large buffer
	}
}

// reply answers request id with a result or an error.
func (c *client) reply(id json.RawMessage, res any, err *jsonrpc2.Error) {
	head := append(append([]byte(`{"jsonrpc":"2.0","id":`), id...), ',')
	if err != nil {
		c.message(head, `"error":`, err)
		return
	}
	c.message(head, `"result":`, res)
}

// notify sends the client a notification.
func (c *client) notify(method string, params any) {
	head := append(append([]byte(`{"jsonrpc":"2.0","method":`), mustQuote(method)...), ',')
	c.message(head, `"params":`, params)
}

func mustQuote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// lineVerdict is what handling a line asks of the loop.
type lineVerdict int

const (
	lineDone  lineVerdict = iota
	lineAgain             // paused for the rate: handle this line again on resume
	lineClose             // malformed or abusive: close the connection
)

// handleLine handles one request line in the loop. The request rate is
// applied before any work: a client over it is paused (its later bytes
// wait in its socket), and one so far over that it would wait longer than
// maxPace is cut off.
func (c *client) handleLine(line []byte) lineVerdict {
	var req wireRequest
	if err := json.Unmarshal(line, &req); err != nil || req.Method == "" {
		c.srv.Stats.Malformed.Add(1)
		return lineClose
	}
	notif := len(req.ID) == 0 || string(req.ID) == "null"
	if notif && !notifications[req.Method] {
		return lineDone // nothing to do, nobody to answer
	}
	if v, ok := c.pace(); !ok {
		return v
	}
	if notif {
		_, _ = c.handle(context.Background(), &req) // no answer, as asked
		return lineDone
	}
	if !slow[req.Method] {
		res, err := c.handle(context.Background(), &req)
		c.reply(req.ID, res, err)
		return lineDone
	}
	if c.waiting.Add(1) > slowSlots {
		c.waiting.Add(-1)
		c.srv.Stats.Limited.Add(1)
		c.reply(req.ID, nil, rpcErr(CodeLimit, "too many requests waiting; wait for the answers"))
		return lineDone
	}
	go func() {
		defer c.waiting.Add(-1)
		res, err := c.handle(context.Background(), &req)
		c.reply(req.ID, res, err)
	}()
	return lineDone
}

// pace takes a rate token for the next request, or pauses the client.
func (c *client) pace() (lineVerdict, bool) {
	if c.reserved {
		c.reserved = false
		return lineDone, true
	}
	r := c.limiter.Reserve()
	d := r.Delay()
	if d == 0 {
		return lineDone, true
	}
	c.srv.Stats.Limited.Add(1)
	if !r.OK() || d > maxPace {
		r.Cancel()
		return lineClose, false
	}
	c.reserved = true
	c.loop.pause(c, time.Now().Add(d))
	return lineAgain, false
}

// notifications are the methods a client may also send without an id,
// when it needs no answer.
var notifications = map[string]bool{MethodLeave: true}

// slow are the methods that may wait seconds on the network: they run
// beside the loop, at most slowSlots at once per client.
var slow = map[string]bool{MethodProbeDial: true, MethodConnectBack: true}
