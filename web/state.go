package web

import (
	"time"

	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
)

// State is what the page shows, as GET /api/state returns it.
type State struct {
	// Lists names the version of the three lists (staged, shared,
	// offered). GET /api/state?lists=V leaves them out while it is still
	// V: the page polls twice a second and a share may hold many files.
	Lists string     `json:"lists"`
	Share *ShareView `json:"share,omitempty"`
	Fetch *FetchView `json:"fetch,omitempty"`
	// Staged are the files and folders dropped or picked, not shared yet.
	Staged []Entry `json:"staged"`
	// DownloadDir is where downloads go (set on the command line only).
	DownloadDir string `json:"download_dir"`
}

// Entry is one file or folder with its size.
type Entry struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Dir  bool   `json:"dir,omitempty"`
}

// ShareView is a share in progress: its link and each recipient.
type ShareView struct {
	Link    string          `json:"link"`
	Entries []Entry         `json:"entries"`
	Bytes   int64           `json:"bytes"`
	Sharing bool            `json:"sharing"` // false once stopped or failed
	Error   string          `json:"error,omitempty"`
	Peers   []*ProgressView `json:"recipients"`
}

// FetchView is a link being opened or downloaded.
type FetchView struct {
	Link    string        `json:"link"`
	Status  string        `json:"status"` // connecting, ready, downloading, done, failed
	Entries []Entry       `json:"entries,omitempty"`
	Bytes   int64         `json:"bytes"`
	Dir     string        `json:"dir,omitempty"`
	Error   string        `json:"error,omitempty"`
	Now     *ProgressView `json:"progress,omitempty"`
}

// ProgressView is one transfer's progress, for a recipient of a share or
// for a download.
type ProgressView struct {
	Receiver int     `json:"receiver,omitempty"`
	Path     string  `json:"path"`   // direct, punched (method), relay; "" before connecting
	Status   string  `json:"status"` // connecting, transferring, done, failed; listed (only looked at the list)
	File     string  `json:"file,omitempty"`
	FilePct  float64 `json:"file_pct"`
	Done     int64   `json:"done"` // bytes, including resumed ones
	Total    int64   `json:"total"`
	Resumed  int64   `json:"resumed,omitempty"`
	BPS      float64 `json:"bytes_per_second"`
	ETA      float64 `json:"eta_seconds"` // -1: unknown
	Seconds  float64 `json:"seconds"`     // since the data began
	Error    string  `json:"error,omitempty"`

	start time.Time // of the data phase (speed excludes resumed bytes)
}

// apply updates the view with one session event.
func (v *ProgressView) apply(e session.Event) {
	switch e.Kind {
	case session.KindConnected, session.KindMoved:
		if e.Report != nil {
			v.Path = session.PathName(e.Report)
		}
	case session.KindProgress:
		if e.Progress != nil {
			v.progress(*e.Progress)
		}
	case session.KindListed:
		v.Status, v.ETA = "listed", 0
	case session.KindDone:
		v.Status, v.FilePct, v.ETA = "done", 100, 0
		v.Done = max(v.Done, v.Total)
	case session.KindError:
		v.Status, v.Error = "failed", e.Error
	}
}

func (v *ProgressView) progress(p transfer.Progress) {
	if v.start.IsZero() || p.Kind == "manifest" {
		v.start = time.Now()
	}
	if v.Status != "done" && v.Status != "failed" {
		v.Status = "transferring"
	}
	v.File, v.Done, v.Total, v.Resumed = p.File, p.Sent+p.Resumed, p.Total, p.Resumed
	v.FilePct = 100
	if p.FileSize > 0 {
		v.FilePct = 100 * float64(p.FileBytes) / float64(p.FileSize)
	}
	v.Seconds = time.Since(v.start).Seconds()
	v.BPS = float64(p.Sent) / max(v.Seconds, 0.001)
	v.ETA = -1
	if p.Sent > 0 && v.BPS > 0 {
		v.ETA = float64(p.Total-v.Done) / v.BPS
	}
}

// entries lists a manifest's files and folders.
func entries(m *transfer.Manifest) []Entry {
	out := make([]Entry, 0, len(m.Files))
	for _, f := range m.Files {
		out = append(out, Entry{Path: f.Path, Size: f.Size, Dir: f.Dir})
	}
	return out
}
