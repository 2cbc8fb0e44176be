package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"rsc.io/qr"

	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
)

// maxJSON bounds an API request's JSON body.
const maxJSON = 64 << 10

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers an API request with an error in words the page shows.
func fail(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// readJSON decodes a bounded JSON body into v, refusing unknown fields
// (a request naming a path to share is refused, not ignored).
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("bad request: %w", err)
	}
	return nil
}

func (h *Helper) handleState(w http.ResponseWriter, r *http.Request) {
	st := h.State()
	if have := r.URL.Query().Get("lists"); have == st.Lists {
		st.Staged = nil
		if st.Share != nil {
			st.Share.Entries = nil
		}
		if st.Fetch != nil {
			st.Fetch.Entries = nil
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// State is a snapshot of what the page shows.
func (h *Helper) State() State {
	staged, version := h.stage.list()
	st := State{DownloadDir: h.cfg.DownloadDir, Staged: staged}
	h.mu.Lock()
	defer h.mu.Unlock()
	st.Lists = fmt.Sprintf("%d.%d.%d", version, h.shares, h.opens)
	if h.share != nil {
		s := *h.share
		s.Peers = nil
		for _, p := range h.share.Peers {
			c := *p
			s.Peers = append(s.Peers, &c)
		}
		st.Share = &s
	}
	if h.fetch != nil {
		f := *h.fetch
		if f.Now != nil {
			c := *f.Now
			f.Now = &c
		}
		st.Fetch = &f
	}
	return st
}

// handlePut adds one dropped or picked file (the body) or folder (?dir=1)
// at ?path=, with ?mtime= (milliseconds since 1970) if the page knows it.
func (h *Helper) handlePut(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var mtime time.Time
	if ms, err := strconv.ParseInt(q.Get("mtime"), 10, 64); err == nil && ms > 0 {
		mtime = time.UnixMilli(ms)
	}
	if err := h.stage.put(q.Get("path"), q.Get("dir") == "1", mtime, r.Body); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errFrozen) {
			status = http.StatusConflict
		}
		fail(w, status, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Helper) handleClear(w http.ResponseWriter, r *http.Request) {
	if err := h.stage.clear(); err != nil {
		fail(w, http.StatusConflict, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleShare shares what is staged. The request has no body: the page
// cannot name anything else to share.
func (h *Helper) handleShare(w http.ResponseWriter, r *http.Request) {
	var none struct{}
	if err := readJSON(r, &none); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	link, err := h.Share()
	if err != nil {
		fail(w, http.StatusConflict, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"link": link})
}

// Share shares the staged files until StopShare, serving recipients
// (several at once); it returns the link.
func (h *Helper) Share() (string, error) {
	if !h.cfg.Server.IsValid() {
		return "", errors.New("this helper has no rendezvous server to share on: start it with machsend web --server HOST:PORT")
	}
	h.mu.Lock()
	busy := h.shareBusy
	h.shareBusy = true
	h.mu.Unlock()
	if busy {
		return "", errors.New("already sharing: stop sharing first")
	}
	link, err := h.startShare()
	if err != nil {
		h.mu.Lock()
		h.shareBusy = false
		h.mu.Unlock()
	}
	return link, err
}

// startShare freezes the stage, makes the session and serves it in the
// background until StopShare or Close.
func (h *Helper) startShare() (string, error) {
	paths := h.stage.freeze()
	if len(paths) == 0 {
		return "", errors.New("nothing to share yet: drop files or folders first")
	}
	sh, err := session.Share(h.ctx, h.cfg.Server, paths, h.sessionOptions(h.shareEvent))
	if err != nil {
		h.stage.thaw()
		return "", fmt.Errorf("cannot share: %w", err)
	}
	ctx, stop := context.WithCancel(h.ctx)
	h.mu.Lock()
	h.share = &ShareView{Link: sh.Link.String(), Entries: entries(sh.Manifest), Bytes: sh.Manifest.Total(), Sharing: true}
	h.shares++
	h.stopShare = stop
	h.mu.Unlock()
	go func() {
		err := sh.ServeEach(ctx, h.cfg.AtOnce)
		sh.Close()
		h.stage.thaw()
		h.mu.Lock()
		defer h.mu.Unlock()
		h.share.Sharing, h.shareBusy = false, false
		if err != nil && ctx.Err() == nil {
			h.share.Error = err.Error()
		}
	}()
	return sh.Link.String(), nil
}

// shareEvent records a share's event in the recipient it concerns.
func (h *Helper) shareEvent(e session.Event) {
	if e.Receiver == 0 {
		return // the share's own events (link, NAT): the page shows the link
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.share == nil {
		return
	}
	var v *ProgressView
	for _, p := range h.share.Peers {
		if p.Receiver == e.Receiver {
			v = p
		}
	}
	if v == nil {
		v = &ProgressView{Receiver: e.Receiver, Status: "connecting", ETA: -1}
		h.share.Peers = append(h.share.Peers, v)
	}
	v.apply(e)
}

func (h *Helper) handleStop(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	stop := h.stopShare
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Helper) handleQR(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	var link string
	if h.share != nil {
		link = h.share.Link
	}
	h.mu.Unlock()
	if link == "" {
		http.NotFound(w, r)
		return
	}
	code, err := qr.Encode(link, qr.M)
	if err != nil {
		fail(w, http.StatusInternalServerError, err)
		return
	}
	code.Scale = 6
	w.Header().Set("Content-Type", "image/png")
	w.Write(code.PNG())
}

func (h *Helper) handleOpen(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Link string `json:"link"`
	}
	if err := readJSON(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if err := h.Open(req.Link); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Open connects to the sender of a link and lists what it shares.
func (h *Helper) Open(raw string) error {
	link, err := transfer.ParseLink(raw)
	if err != nil {
		return fmt.Errorf("this is not a machsend link (%w); paste the whole link, including the part after '#'", err)
	}
	if !h.beginFetch() {
		return errors.New("busy with another link: wait until it is done")
	}
	h.mu.Lock()
	h.fetch = &FetchView{Link: link.String(), Status: "connecting"}
	h.fetchLink = link
	h.opens++
	h.mu.Unlock()
	ro := transfer.ReceiveOptions{ListOnly: true, OnManifest: func(m *transfer.Manifest) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.fetch.Entries, h.fetch.Bytes = entries(m), m.Total()
		h.opens++
	}}
	go h.runFetch(link, ro, "ready")
	return nil
}

// beginFetch takes the helper's one fetch slot.
func (h *Helper) beginFetch() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fetchBusy {
		return false
	}
	h.fetchBusy = true
	return true
}

// runFetch runs one fetch and records how it ended.
func (h *Helper) runFetch(link transfer.Link, ro transfer.ReceiveOptions, after string) {
	err := session.Fetch(h.ctx, link, ro, h.sessionOptions(h.fetchEvent))
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fetchBusy = false
	if err != nil {
		h.fetch.Status, h.fetch.Error = "failed", err.Error()
		if h.fetch.Now != nil && h.fetch.Now.Status != "done" {
			h.fetch.Now.Status, h.fetch.Now.Error = "failed", err.Error()
		}
		return
	}
	h.fetch.Status, h.fetch.Error = after, ""
}

// fetchEvent records a fetch's event.
func (h *Helper) fetchEvent(e session.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fetch == nil {
		return
	}
	if h.fetch.Status != "downloading" || h.fetch.Now == nil || e.Kind == session.KindError {
		return // listing shows only the list; runFetch records errors, with advice
	}
	h.fetch.Now.apply(e)
	if e.Kind == session.KindDone && e.Dir != "" {
		h.fetch.Dir = e.Dir
	}
}

func (h *Helper) handleDownload(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Paths []string `json:"paths"` // entries of the list; none: all
	}
	if err := readJSON(r, &req); err != nil {
		fail(w, http.StatusBadRequest, err)
		return
	}
	if err := h.Download(req.Paths); err != nil {
		fail(w, http.StatusConflict, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Download fetches the listed entries (all if none) of the open link into
// the download folder; an interrupted download resumes when asked again.
func (h *Helper) Download(paths []string) error {
	h.mu.Lock()
	f := h.fetch
	var known []string
	if f != nil {
		for _, e := range f.Entries {
			known = append(known, e.Path)
		}
	}
	link := h.fetchLink
	h.mu.Unlock()
	if f == nil || len(known) == 0 {
		return errors.New("open a link first")
	}
	for _, p := range paths {
		if !slices.Contains(known, p) {
			return fmt.Errorf("%q is not in this share's list", p)
		}
	}
	if !h.beginFetch() {
		return errors.New("busy with this link: wait until it is done")
	}
	h.mu.Lock()
	h.fetch.Status, h.fetch.Error = "downloading", ""
	h.fetch.Now = &ProgressView{Status: "connecting", ETA: -1}
	h.mu.Unlock()
	ro := transfer.ReceiveOptions{Dir: h.cfg.DownloadDir}
	if len(paths) > 0 {
		ro.Select = selectExact(paths)
	}
	go h.runFetch(link, ro, "done")
	return nil
}

// selectExact selects the named entries, everything inside a named folder,
// and the folders a named entry lies in (so they are created); unlike
// transfer.MatchAny, no name is a pattern.
func selectExact(paths []string) func(transfer.Entry) bool {
	return func(e transfer.Entry) bool {
		for _, p := range paths {
			if e.Path == p || strings.HasPrefix(e.Path, p+"/") || strings.HasPrefix(p, e.Path+"/") {
				return true
			}
		}
		return false
	}
}
