package browser

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/machsend/machsend/experiments"
	"github.com/machsend/machsend/nat"
	"github.com/machsend/machsend/natlab"
	"github.com/machsend/machsend/session"
)

// Case is one end-to-end run: the NAT profile both hosts are behind and
// the path the transfer must end on.
type Case struct {
	Name    string `json:"case"`
	Profile string `json:"profile"`
	Want    string `json:"want_path"` // punched or relay (traversal.Report.Path)
	// Drop gives the page the files by dragging them from the desktop
	// onto its drop zone; otherwise through its two file pickers.
	Drop bool `json:"drop"`
}

// Cases are the runs make test and make experiment do: port-restricted
// cone NATs, which hole punching traverses (the transfer starts on the
// relay and moves to the punched path), and NATs with random ports for
// every destination, which it does not (the transfer stays on the relay).
var Cases = []Case{
	{Name: "punched", Profile: "port-restricted-cone", Want: "punched", Drop: true},
	{Name: "relay", Profile: "symmetric-random", Want: "relay"},
}

// wanRate shapes both NATs' uplinks, so the transfer lasts long enough
// (about two seconds) for the page to show it moving to the punched path:
// a move that comes as the last bytes arrive is seen by the sender only
// (the recipient has stopped reading the relay), and at 100 Mbit/s, once
// the first byte came two round trips sooner, one run in three ended so.
const wanRate = 40e6

// Result is what one run showed.
type Result struct {
	Case
	// SenderPath and RecipientPath are the paths the helpers' own events
	// report for the download (the last connected or moved event).
	SenderPath    string `json:"sender_path"`
	RecipientPath string `json:"recipient_path"`
	// SenderPage and RecipientPage are what the pages said at the end.
	SenderPage    string `json:"sender_page"`
	RecipientPage string `json:"recipient_page"`
	Files         int    `json:"files"`
	Bytes         int64  `json:"bytes"`
	Identical     bool   `json:"identical"`
	// Seconds is from the recipient's Download click to its page saying
	// Done.
	Seconds     float64  `json:"seconds"`
	Screenshots []string `json:"screenshots"`
	// SenderTimeline and RecipientTimeline are the helpers' events in
	// short, with seconds since each helper's first event: what a failed
	// check is read against.
	SenderTimeline    []string `json:"sender_timeline,omitempty"`
	RecipientTimeline []string `json:"recipient_timeline,omitempty"`
}

// Check says what of the run went wrong, or nil: the files must arrive
// byte-identical over the wanted path, and both pages must show that path
// as the helpers' events name it.
func (r Result) Check() error {
	var errs []error
	if !r.Identical {
		errs = append(errs, errors.New("the received files differ from the shared ones"))
	}
	for side, got := range map[string]string{"sender": r.SenderPath, "recipient": r.RecipientPath} {
		if !strings.HasPrefix(got, r.Want) {
			errs = append(errs, fmt.Errorf("%s's path is %q, want %s", side, got, r.Want))
		}
	}
	if !strings.Contains(r.SenderPage, "path: "+r.SenderPath) || !strings.Contains(r.RecipientPage, "path: "+r.RecipientPath) {
		errs = append(errs, fmt.Errorf("the pages do not show the path (sender page %q, recipient page %q)", r.SenderPage, r.RecipientPage))
	}
	return errors.Join(errs...)
}

// run is one case in progress.
type run struct {
	c     Case
	p     *experiments.LabPeers
	out   string // screenshots go here
	res   *Result
	shots int
}

// Run runs one case in a lab of its own, with the binaries in bin;
// screenshots go into out as CASE-N-STEP.png.
func Run(ctx context.Context, c Case, bin, out string) (Result, error) {
	res := Result{Case: c}
	prof, err := nat.Load(c.Profile)
	if err != nil {
		return res, err
	}
	topo, err := natlab.LoadTopology("two-nat")
	if err != nil {
		return res, err
	}
	lab, err := natlab.Up(ctx, natlab.Options{Topology: topo, Default: prof})
	if err != nil {
		return res, err
	}
	defer lab.Close()
	for _, ifc := range []string{"wan-a", "wan-b"} {
		if err := lab.Shape("core", ifc, wanRate); err != nil {
			return res, err
		}
	}
	p, err := experiments.StartRendezvous(ctx, lab, bin, 0)
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return res, err
	}
	r := &run{c: c, p: p, out: out, res: &res}
	err = r.do(ctx)
	return res, err
}

// do drives the two browsers through the whole story.
func (r *run) do(ctx context.Context) error {
	work, err := os.MkdirTemp("", "machsend-browser-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	src, picks, err := makeSource(filepath.Join(work, "src"))
	if err != nil {
		return err
	}
	a, err := r.browser(ctx, r.p.A, 1100, 1000)
	if err != nil {
		return err
	}
	defer a.Close()
	senderHelper, link, err := r.share(ctx, a, picks, filepath.Join(work, "a"))
	if err != nil {
		return err
	}
	b, err := r.browser(ctx, r.p.B, 412, 915) // a phone's width
	if err != nil {
		return err
	}
	defer b.Close()
	recipientHelper, err := r.receive(ctx, b, link, filepath.Join(work, "b"))
	if err != nil {
		return err
	}
	defer func() { // also when a step failed: what the helpers did is the evidence
		r.res.SenderTimeline = timeline(senderHelper.Events())
		r.res.RecipientTimeline = timeline(recipientHelper.Events())
	}()
	if err := r.senderSawIt(ctx, a); err != nil {
		return err
	}
	r.res.SenderPath = finalPath(senderHelper.Events())
	r.res.RecipientPath = finalPath(recipientHelper.Events())
	r.res.Files, r.res.Bytes, r.res.Identical, err = sameTree(src, filepath.Join(work, "b", "downloads"))
	return err
}

func (r *run) browser(ctx context.Context, node string, w, h int) (*Browser, error) {
	n, err := r.p.Lab.Node(node)
	if err != nil {
		return nil, err
	}
	return Launch(ctx, n.NS, w, h)
}

// shot saves a screenshot of b's page as the next step of the case.
func (r *run) shot(b *Browser, step string) error {
	png, err := chromedp.Run(b.Tab, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot %s: %w", step, err)
	}
	r.shots++
	name := fmt.Sprintf("%s-%d-%s.png", r.c.Name, r.shots, step)
	r.res.Screenshots = append(r.res.Screenshots, name)
	return os.WriteFile(filepath.Join(r.out, name), png, 0o644)
}

// helper starts machsend web on a lab node and returns it with its page's
// address.
func (r *run) helper(node, dir string, args ...string) (*experiments.Running, string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	urlFile := filepath.Join(dir, "url")
	h, err := r.p.Machsend(node, nil, append([]string{"web", "--no-open", "--url-file", urlFile, "-o", filepath.Join(dir, "downloads")}, args...)...)
	if err != nil {
		return nil, "", err
	}
	for range 200 {
		if b, err := os.ReadFile(urlFile); err == nil && strings.HasSuffix(string(b), "\n") {
			return h, strings.TrimSpace(string(b)), nil
		}
		select {
		case <-h.Proc.Done():
			return nil, "", fmt.Errorf("machsend web on %s exited: %v", node, h.Proc.Wait())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil, "", fmt.Errorf("machsend web on %s gave no address in 10 s", node)
}

// finalPath is the path of the last connection the events report (a
// relay-first transfer's moved event comes after its connected one).
func finalPath(evs []session.Event) string {
	path := ""
	for _, e := range evs {
		if (e.Kind == session.KindConnected || e.Kind == session.KindMoved) && e.Report != nil {
			path = session.PathName(e.Report)
		}
	}
	return path
}

// timeline sums up evs, one line per event that is not progress, with
// seconds since the first.
func timeline(evs []session.Event) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == session.KindProgress {
			continue
		}
		line := fmt.Sprintf("+%.3fs %s", e.Time.Sub(evs[0].Time).Seconds(), e.Kind)
		if e.Receiver > 0 {
			line += fmt.Sprintf(" (receiver %d)", e.Receiver)
		}
		switch {
		case e.Step != nil:
			line += fmt.Sprintf(" %s %s %s %s", e.Step.Kind, e.Step.Attempt, e.Step.Remote, e.Step.Detail)
		case e.Report != nil:
			line += " " + session.PathName(e.Report)
		case e.Error != "":
			line += " " + e.Error
		}
		out = append(out, line)
	}
	return out
}

// poll waits for a JavaScript condition on b's page. A poll cut short
// because the page was replaced under it (a navigation finishing: "Cannot
// find context") is started again, within the same timeout.
func poll(b *Browser, what, cond string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := chromedp.Do(b.Tab, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingTimeout(time.Until(deadline)), chromedp.WithPollingInterval(100*time.Millisecond)))
		if err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "Cannot find context") || time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sameTree compares every file under want with the one under got.
func sameTree(want, got string) (files int, bytes int64, same bool, err error) {
	same = true
	err = filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, err := fileHash(p)
		if err != nil {
			return err
		}
		b, _ := fileHash(filepath.Join(got, rel))
		fi, _ := d.Info()
		files, bytes = files+1, bytes+fi.Size()
		same = same && a == b
		return nil
	})
	return files, bytes, same, err
}

func fileHash(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
