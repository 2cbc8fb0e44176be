package session

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/machsend/machsend/natcheck"
	"github.com/machsend/machsend/transfer"
	"github.com/machsend/machsend/traversal"
	"github.com/machsend/machsend/traversal/model"
)

// Kind says what an Event reports, and so which of its fields are set.
type Kind string

// Event kinds, in the order a session meets them. The fields each sets are
// listed; every event has Kind and Time.
const (
	KindServer    Kind = "server"    // Server: reaching the rendezvous server (bounded by ServerTimeout)
	KindSession   Kind = "session"   // Session, Role
	KindWaiting   Kind = "waiting"   // the share is serving another receiver; this one waits its turn
	KindLink      Kind = "link"      // Link or Code, Files, Bytes, Skipped (Share, ShareCode)
	KindNAT       Kind = "nat"       // NAT: this side's NAT from the cheap probe
	KindStep      Kind = "event"     // Step: one traversal step (attempt, expectation, ...)
	KindReport    Kind = "report"    // Report: every attempt, also when none connected
	KindConnected Kind = "connected" // Report: the path in use
	KindMoved     Kind = "moved"     // Report: the transfer moved from the relay to this direct path
	KindManifest  Kind = "manifest"  // Manifest (Fetch)
	KindListed    Kind = "listed"    // the receiver only looked at the list of files (Share)
	KindProgress  Kind = "progress"  // Progress
	KindPings     Kind = "pings"     // RTTms (machsend punch)
	KindBulk      Kind = "bulk"      // Bulk (machsend punch --bulk)
	KindNATCheck  Kind = "natcheck"  // NATCheck, Verdicts (machsend natcheck)
	KindDone      Kind = "done"      // Bytes or Dir, MaxRSSKB
	KindError     Kind = "error"     // Error
)

// Event is one thing that happened in a session. The machsend command
// prints it as one JSON object per line with --json.
type Event struct {
	Kind Kind      `json:"type"`
	Time time.Time `json:"time"`
	// Receiver is which receiver of a share serving several at once
	// (Sharing.ServeEach) the event concerns, numbered from 1 in the order
	// they joined; 0 when not known or not such a share.
	Receiver int `json:"receiver,omitempty"`

	Server   string             `json:"server,omitempty"`
	Skipped  []string           `json:"skipped,omitempty"`
	Session  string             `json:"session,omitempty"`
	Role     string             `json:"role,omitempty"`
	Link     string             `json:"link,omitempty"`
	Code     string             `json:"code,omitempty"`
	Files    int                `json:"files,omitempty"`
	Bytes    int64              `json:"bytes,omitempty"`
	NAT      *traversal.NATInfo `json:"nat,omitempty"`
	Step     *traversal.Event   `json:"step,omitempty"`
	Report   *traversal.Report  `json:"report,omitempty"`
	Manifest *transfer.Manifest `json:"manifest,omitempty"`
	Progress *transfer.Progress `json:"progress,omitempty"`
	RTTms    []float64          `json:"rtt_ms,omitempty"`
	Bulk     *Bulk              `json:"bulk,omitempty"`
	NATCheck *natcheck.Result   `json:"natcheck,omitempty"`
	Verdicts []natcheck.Verdict `json:"verdicts,omitempty"`
	Dir      string             `json:"dir,omitempty"`
	MaxRSSKB int64              `json:"max_rss_kb,omitempty"`
	Error    string             `json:"error,omitempty"`
}

// Bulk is an unencrypted bulk copy over a punched connection, as one side
// timed it (machsend punch --bulk: the plain-TCP baseline of the
// throughput benchmark).
type Bulk struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"mbps"`
	Side    string  `json:"side"` // sender or receiver
	// Cipher is "aes-256-gcm" for a copy through machsend's secure
	// channel, "" for plain TCP.
	Cipher string `json:"cipher,omitempty"`
}

// Text is the event as one line for people ("" for events a terminal
// does not show, such as traversal steps and progress).
func (e Event) Text() string {
	switch e.Kind {
	case KindServer:
		return "reaching the rendezvous server " + e.Server + "..."
	case KindSession:
		return "session " + e.Session + " (role " + e.Role + ")"
	case KindWaiting:
		return "the sender is serving another receiver; waiting for our turn..."
	case KindNAT:
		if e.NAT != nil {
			return "this side: " + model.Describe(e.NAT.Mapping, e.NAT.Preserving, e.NAT.Delta)
		}
	case KindStep:
		if e.Step != nil && e.Step.Kind == "expect" {
			return "expected path: " + e.Step.Detail
		}
	case KindConnected:
		if e.Report != nil {
			return fmt.Sprintf("connected (%s) in %s", PathName(e.Report), e.Report.ConnectTime.Round(time.Millisecond))
		}
	case KindMoved:
		if e.Report != nil {
			return fmt.Sprintf("moved to the direct path (%s), found in %s", PathName(e.Report), e.Report.ConnectTime.Round(time.Millisecond))
		}
	case KindListed:
		return "the receiver looked at the list of files and left"
	case KindPings:
		return fmt.Sprintf("round trips (ms): %v", e.RTTms)
	case KindBulk:
		if e.Bulk != nil {
			return fmt.Sprintf("bulk: %d bytes in %.3fs = %.1f MB/s", e.Bulk.Bytes, e.Bulk.Seconds, e.Bulk.MBps)
		}
	case KindError:
		return "error: " + e.Error
	}
	return ""
}

// PathName names the path a report connected over, for people.
func PathName(rep *traversal.Report) string {
	if rep.Path == "punched" {
		return "punched by " + string(rep.Method)
	}
	return rep.Path
}

// JSONWriter writes events as JSON lines, safely from several goroutines.
type JSONWriter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSONWriter writes to w.
func NewJSONWriter(w io.Writer) *JSONWriter { return &JSONWriter{enc: json.NewEncoder(w)} }

// Write prints one event (stamping Time if unset); a write error is
// returned and the writer stays usable.
func (j *JSONWriter) Write(e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.enc.Encode(e); err != nil {
		return fmt.Errorf("write event: %w", err)
	}
	return nil
}

// ParseEvents reads JSON lines as printed by JSONWriter; lines that are not
// events (a tool's own messages) are skipped.
func ParseEvents(lines []string) []Event {
	var out []Event
	for _, l := range lines {
		var e Event
		if json.Unmarshal([]byte(l), &e) == nil && e.Kind != "" {
			out = append(out, e)
		}
	}
	return out
}

// ReadEvents is ParseEvents over a stream.
func ReadEvents(r io.Reader) ([]Event, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	return ParseEvents(lines), nil
}

// First returns the first event of kind k, if any.
func First(evs []Event, k Kind) (Event, bool) {
	for _, e := range evs {
		if e.Kind == k {
			return e, true
		}
	}
	return Event{}, false
}
