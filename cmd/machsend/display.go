package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mdp/qrterminal/v3"
	"golang.org/x/term"

	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
)

// display shows a session's events on a terminal, or prints them as JSON
// lines with --json. Its show method is a session.Options.Events.
type display struct {
	json *session.JSONWriter // nil: for people
	tty  bool

	mu       sync.Mutex    // guards the fields below
	views    map[int]*view // by event's Receiver (0: the only one)
	lastKind session.Kind
}

// view is what the display tracks of one receiver's transfer.
type view struct {
	path  string
	start time.Time // speed counts transfer time only
	last  time.Time // chunk events are thinned
	// moving is set by the first chunk: the first chunk of a transfer is
	// always shown (its time is the time to the first byte).
	moving bool
}

// viewLocked is the view of receiver n; d.mu is held.
func (d *display) viewLocked(n int) *view {
	v := d.views[n]
	if v == nil {
		v = &view{start: time.Now()}
		d.views[n] = v
	}
	return v
}

// prefix names the receiver an event concerns on a share serving several.
func prefix(e session.Event) string {
	if e.Receiver == 0 {
		return ""
	}
	return fmt.Sprintf("receiver %d: ", e.Receiver)
}

func newDisplay(asJSON bool) *display {
	d := &display{tty: term.IsTerminal(int(os.Stdout.Fd())), views: map[int]*view{}}
	if asJSON {
		d.json = session.NewJSONWriter(os.Stdout)
	}
	return d
}

// show prints one event.
func (d *display) show(e session.Event) {
	if e.Kind == session.KindProgress && e.Progress != nil {
		d.progress(*e.Progress, e)
		return
	}
	if d.json != nil {
		_ = d.json.Write(e)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if (e.Kind == session.KindConnected || e.Kind == session.KindMoved) && e.Report != nil {
		d.viewLocked(e.Receiver).path = session.PathName(e.Report)
	}
	text := d.textLocked(e)
	if text == "" {
		return
	}
	text = prefix(e) + text
	if e.Kind == session.KindDone {
		delete(d.views, e.Receiver)
	}
	if d.lastKind == session.KindProgress && d.tty {
		fmt.Println()
	}
	d.lastKind = e.Kind
	fmt.Println(text)
	if e.Kind == session.KindLink && e.Link != "" && d.tty {
		qrterminal.GenerateHalfBlock(e.Link, qrterminal.L, os.Stdout)
	}
}

// textLocked is an event's line for people: the session's own words, and
// the lines only a terminal shows (link, manifest, completion).
func (d *display) textLocked(e session.Event) string {
	switch e.Kind {
	case session.KindSession, session.KindReport:
		return "" // the link (send) or the manifest (get) says it better
	case session.KindLink:
		text := fmt.Sprintf("sharing %d entries, %s. Send this link to the recipient:\n\n  %s\n", e.Files, human(e.Bytes), e.Link)
		if e.Code != "" {
			text = fmt.Sprintf("sharing %d entries, %s. On the other computer, with the same server, run:\n\n  machsend get %s\n\n"+
				"(one receiver, one try: a wrong code ends the share)\n", e.Files, human(e.Bytes), e.Code)
		}
		if len(e.Skipped) > 0 {
			text += fmt.Sprintf("\nnot shared (not files or folders: symlinks, devices, sockets): %s\n", strings.Join(e.Skipped, ", "))
		}
		return text
	case session.KindManifest:
		return manifestText(e.Manifest)
	case session.KindDone:
		if e.Dir != "" {
			return "received into " + e.Dir
		}
		return "transfer complete"
	}
	return e.Text()
}

func manifestText(m *transfer.Manifest) string {
	if m == nil {
		return ""
	}
	var lines []string
	for _, e := range m.Files {
		if e.Dir {
			lines = append(lines, fmt.Sprintf("  %s/", e.Path))
		} else {
			lines = append(lines, fmt.Sprintf("  %-60s %12s", e.Path, human(e.Size)))
		}
	}
	return fmt.Sprintf("%d entries, %s in total:\n%s", len(m.Files), human(m.Total()), strings.Join(lines, "\n"))
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progress renders one progress event: per file and total, speed and ETA
// (resumed bytes are not counted in the speed), and the path in use. Chunk
// events after the first are thinned to five a second.
func (d *display) progress(p transfer.Progress, e session.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.viewLocked(e.Receiver)
	if p.Kind == "manifest" || (p.Kind == "file-start" && p.Sent == 0) {
		v.start = time.Now()
	}
	if p.Kind == "chunk" && v.moving && time.Since(v.last) < 200*time.Millisecond {
		return
	}
	v.moving = v.moving || p.Kind == "chunk"
	v.last = time.Now()
	if d.json != nil {
		_ = d.json.Write(e)
		return
	}
	elapsed := time.Since(v.start).Seconds()
	speed := float64(p.Sent) / max(elapsed, 0.001)
	eta := "-"
	if p.Sent > 0 && p.Total > 0 {
		eta = (time.Duration(float64(p.Total-p.Sent-p.Resumed)/speed) * time.Second).Round(time.Second).String()
	}
	filePct := 100.0
	if p.FileSize > 0 {
		filePct = 100 * float64(p.FileBytes) / float64(p.FileSize)
	}
	line := fmt.Sprintf("%s[%s] %s %3.0f%% | total %s / %s | %s/s | ETA %s",
		prefix(e), v.path, p.File, filePct, human(p.Sent+p.Resumed), human(p.Total), human(int64(speed)), eta)
	if p.Resumed > 0 {
		line += fmt.Sprintf(" | resumed %s", human(p.Resumed))
	}
	if p.SHA256 != "" { // asked for with --checksum: what sha256sum prints on both sides
		line += " | sha256 " + p.SHA256
	}
	if d.tty {
		fmt.Printf("\r\033[K%s", line)
		d.lastKind = session.KindProgress
	} else if p.Kind != "chunk" {
		fmt.Println(line)
	}
}
