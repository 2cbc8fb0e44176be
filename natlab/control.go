package natlab

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/machsend/machsend/natlab/impair"
)

// A lab's impairment engines live in the process that holds the lab (for
// the CLI, the `natlab up` holder). Other processes change impairments on a
// running lab through the holder's control socket: a Unix socket next to
// the lab's record, one JSON request and one JSON answer per connection.

// ErrNoControl is returned when a lab has no control socket (its holder is
// not a `natlab up` process, or it is gone).
var ErrNoControl = errors.New("lab has no control socket (was it made by natlab up?)")

func controlPath(lab string) string { return filepath.Join(RecordDir, lab+".ctl") }

// ControlRequest asks a lab holder to change or list impairments.
type ControlRequest struct {
	// Op is "impair" (set one direction; Spec "none" removes it) or "list".
	Op      string `json:"op"`
	Node    string `json:"node,omitempty"`
	Network string `json:"network,omitempty"`
	Spec    string `json:"spec,omitempty"`
}

// ControlReply is the holder's answer.
type ControlReply struct {
	Error       string         `json:"error,omitempty"`
	Impairments []impair.Stats `json:"impairments"`
}

// ServeControl serves the lab's control socket until the returned stop is
// called (the lab's Close does not stop it).
func (l *Lab) ServeControl() (stop func(), err error) {
	path := controlPath(l.Name)
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.serveControl(c)
		}
	}()
	return func() {
		ln.Close()
		<-done
		_ = os.Remove(path)
	}, nil
}

func (l *Lab) serveControl(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var req ControlRequest
	var rep ControlReply
	dec := json.NewDecoder(bufio.NewReader(&limitedConn{c, 1 << 16}))
	if err := dec.Decode(&req); err != nil {
		rep.Error = fmt.Sprintf("bad request: %v", err)
	} else {
		switch req.Op {
		case "impair":
			im, err := impair.Parse(req.Spec)
			if err == nil {
				err = l.Impair(req.Node, req.Network, im)
			}
			if err != nil {
				rep.Error = err.Error()
			}
		case "list":
		default:
			rep.Error = fmt.Sprintf("unknown op %q (impair, list)", req.Op)
		}
	}
	rep.Impairments = l.Impairments()
	_ = json.NewEncoder(c).Encode(rep)
}

// limitedConn reads at most n bytes: a request is small.
type limitedConn struct {
	c net.Conn
	n int
}

func (r *limitedConn) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("request too large")
	}
	p = p[:min(len(p), r.n)]
	k, err := r.c.Read(p)
	r.n -= k
	return k, err
}

// Control sends one request to a running lab's holder.
func Control(lab string, req ControlRequest) (*ControlReply, error) {
	c, err := net.DialTimeout("unix", controlPath(lab), 2*time.Second)
	if err != nil {
		if _, rerr := ReadRecord(lab); rerr != nil {
			return nil, rerr
		}
		return nil, fmt.Errorf("%w: %v", ErrNoControl, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("control %s: %w", lab, err)
	}
	var rep ControlReply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return nil, fmt.Errorf("control %s: %w", lab, err)
	}
	if rep.Error != "" {
		return &rep, fmt.Errorf("lab %s: %s", lab, rep.Error)
	}
	return &rep, nil
}
