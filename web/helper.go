package web

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/machsend/machsend/session"
	"github.com/machsend/machsend/transfer"
)

//go:embed ui
var uiFS embed.FS

// Config is what a Helper is started with: everything the page cannot
// choose.
type Config struct {
	// Server is the rendezvous server shares are made on (a link someone
	// sent names its own).
	Server netip.AddrPort
	// DownloadDir is where downloads go; the page cannot change it.
	DownloadDir string
	// StageParent holds the helper's private folder of dropped files
	// (default: the system's temporary folder).
	StageParent string
	// AtOnce is how many recipients a share serves at the same time.
	AtOnce int
	// Session carries the traversal method; its Events are the helper's.
	Session session.Options
	// Events, if set, also sees every session event (machsend web --json).
	Events func(session.Event)
}

// Helper is the local web helper: the page, its API and the sessions it
// runs. Its methods may be called from any goroutine.
type Helper struct {
	cfg    Config
	token  string
	cookie string          // the token's cookie name (per port)
	hosts  map[string]bool // Host headers that name the helper
	addr   netip.AddrPort  // where it listens, set by Listen
	stage  *stage

	ctx    context.Context // ends with Close: every session stops
	cancel context.CancelFunc

	mu        sync.Mutex // guards the fields below
	share     *ShareView
	shareBusy bool // a share is starting or running
	stopShare context.CancelFunc
	fetch     *FetchView
	fetchLink transfer.Link
	fetchBusy bool
	// shares and opens count the shares made and lists received: with the
	// stage's version, the version of the page's lists (State.Lists).
	shares, opens int
}

// New makes a helper; Listen then serves it.
func New(cfg Config) (*Helper, error) {
	if cfg.AtOnce <= 0 {
		cfg.AtOnce = session.DefaultAtOnce
	}
	if cfg.DownloadDir == "" {
		return nil, errors.New("web: no download folder")
	}
	st, err := newStage(cfg.StageParent)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 32)
	rand.Read(b)
	h := &Helper{cfg: cfg, token: base64.RawURLEncoding.EncodeToString(b), stage: st}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// Listen binds the helper to a free port on 127.0.0.1 (and only there)
// and serves it until Close.
func (h *Helper) Listen() error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("cannot listen on 127.0.0.1: %w", err)
	}
	h.addr = ln.Addr().(*net.TCPAddr).AddrPort()
	port := strconv.Itoa(int(h.addr.Port()))
	h.cookie = "machsend-" + port
	h.hosts = map[string]bool{"127.0.0.1:" + port: true, "localhost:" + port: true}
	srv := &http.Server{Handler: h.Handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10}
	go srv.Serve(ln)
	context.AfterFunc(h.ctx, func() { srv.Close() })
	return nil
}

// URL is the address to open in the browser, with the token; it works
// once per browser (the token then lives in a cookie).
func (h *Helper) URL() string { return fmt.Sprintf("http://%s/?t=%s", h.addr, h.token) }

// Addr is where the helper listens.
func (h *Helper) Addr() netip.AddrPort { return h.addr }

// Close stops every session, the server, and removes the dropped files'
// copies.
func (h *Helper) Close() error {
	h.cancel()
	return h.stage.close()
}

// Handler is the helper's HTTP handler, guarded (guard.go).
func (h *Helper) Handler() http.Handler {
	mux := http.NewServeMux()
	ui, _ := fs.Sub(uiFS, "ui")
	mux.Handle("GET /", http.FileServerFS(ui))
	mux.HandleFunc("GET /api/state", h.handleState)
	mux.HandleFunc("GET /api/qr.png", h.handleQR)
	mux.HandleFunc("PUT /api/files", h.handlePut)
	mux.HandleFunc("DELETE /api/files", h.handleClear)
	mux.HandleFunc("POST /api/share", h.handleShare)
	mux.HandleFunc("POST /api/stop", h.handleStop)
	mux.HandleFunc("POST /api/open", h.handleOpen)
	mux.HandleFunc("POST /api/download", h.handleDownload)
	return h.guard(mux)
}

// emit passes a session event on to Config.Events.
func (h *Helper) emit(e session.Event) {
	if h.cfg.Events != nil {
		h.cfg.Events(e)
	}
}

// sessionOptions are the configured options reporting to sink.
func (h *Helper) sessionOptions(sink func(session.Event)) session.Options {
	o := h.cfg.Session
	o.Events = func(e session.Event) {
		sink(e)
		h.emit(e)
	}
	return o
}

// stageDir is the private folder of dropped files.
func (h *Helper) stageDir() string { return h.stage.dir }
