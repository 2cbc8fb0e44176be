package browser

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/machsend/machsend/experiments"
)

// makeSource makes what the sender shares: two files and a folder (with a
// sub-folder). It returns the tree's root and what the sender picks: the
// two files, and the folder.
func makeSource(root string) (string, [][]string, error) {
	files := map[string]int64{"report.pdf": 6 << 20, "notes.txt": 1234, "photos/2009/beach.jpg": 5<<20 + 77, "photos/readme.txt": 99}
	seed := uint64(1)
	for name, size := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", nil, err
		}
		if err := experiments.WriteRandomFile(p, size, seed); err != nil {
			return "", nil, err
		}
		seed++
	}
	picks := [][]string{{filepath.Join(root, "report.pdf"), filepath.Join(root, "notes.txt")}, {filepath.Join(root, "photos")}}
	return root, picks, nil
}

// share has the sender drop (or pick) the files and the folder on its
// helper's page and share them; it returns the helper and the link the
// page shows.
func (r *run) share(ctx context.Context, a *Browser, picks [][]string, dir string) (*experiments.Running, string, error) {
	h, url, err := r.helper(r.p.A, dir, "--server", r.p.Server.String())
	if err != nil {
		return nil, "", err
	}
	if err := chromedp.Do(a.Tab, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.ID("drop"))); err != nil {
		return nil, "", fmt.Errorf("open the sender's page: %w", err)
	}
	// A dropped folder arrives with its sub-folders as entries of their
	// own; a picked one as its files.
	rows := 4
	if r.c.Drop {
		rows = 6
		err = drop(a, "drop", append(picks[0], picks[1]...))
	} else {
		err = chromedp.Do(a.Tab, chromedp.SetUploadFiles(chromedp.ID("pick-files"), picks[0]), chromedp.SetUploadFiles(chromedp.ID("pick-folder"), picks[1]))
	}
	if err != nil {
		return nil, "", fmt.Errorf("give the page the files: %w", err)
	}
	if err := poll(a, "the files are listed", fmt.Sprintf(`document.querySelectorAll("#staged tbody tr").length === %d`, rows), 30*time.Second); err != nil {
		return nil, "", err
	}
	if err := r.shot(a, "sender-added"); err != nil {
		return nil, "", err
	}
	if err := chromedp.Do(a.Tab, chromedp.Click(chromedp.ID("share"))); err != nil {
		return nil, "", fmt.Errorf("click share: %w", err)
	}
	if err := poll(a, "the link and its QR code", `document.getElementById("link").value.startsWith("http://") && document.getElementById("qr").complete && document.getElementById("qr").naturalWidth > 0`, 30*time.Second); err != nil {
		return nil, "", err
	}
	link, err := chromedp.Run(a.Tab, chromedp.Value(chromedp.ID("link")))
	if err != nil {
		return nil, "", err
	}
	return h, link, r.shot(a, "sender-shared")
}

// drop drags paths from the desktop onto the element with the given id
// and drops them there: the browser's own drag-and-drop (Input.dispatchDragEvent),
// whose drop event carries the files and folders as a user's would.
func drop(b *Browser, id string, paths []string) error {
	type point struct{ X, Y float64 }
	at, err := chromedp.Run(b.Tab, chromedp.Evaluate[point](fmt.Sprintf(
		`(function(){var r=document.getElementById(%q).getBoundingClientRect();return {X:r.left+r.width/2,Y:r.top+r.height/2};})()`, id)))
	if err != nil {
		return err
	}
	data := &input.DragData{Items: []*input.DragDataItem{}, Files: paths, DragOperationsMask: 1}
	for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
		params := input.DispatchDragEventParams{Type: typ, X: at.X, Y: at.Y, Data: data}
		if _, err := chromedp.Run(b.Tab, func(ctx context.Context, t *chromedp.Target) (cdp.Empty, error) {
			return cdp.Call(ctx, t, input.DispatchDragEvent, params)
		}); err != nil {
			return fmt.Errorf("%s: %w", typ, err)
		}
	}
	return nil
}

// receive opens the link in the recipient's browser (the landing page),
// hands its machsend:// form to a new helper as the desktop's scheme
// handler would, and downloads everything from the helper's page.
func (r *run) receive(ctx context.Context, b *Browser, link, dir string) (*experiments.Running, error) {
	if err := chromedp.Do(b.Tab, chromedp.Navigate(link)); err != nil {
		return nil, fmt.Errorf("open the link: %w", err)
	}
	if err := poll(b, "the landing page's Open in machsend", `document.getElementById("app").href.startsWith("machsend://")`, 20*time.Second); err != nil {
		return nil, err
	}
	app, err := chromedp.Run(b.Tab, chromedp.Evaluate[string](`document.getElementById("app").href`))
	if err != nil {
		return nil, err
	}
	if err := r.shot(b, "recipient-landing"); err != nil {
		return nil, err
	}
	h, url, err := r.helper(r.p.B, dir, app)
	if err != nil {
		return nil, err
	}
	if err := chromedp.Do(b.Tab, chromedp.Navigate(url)); err != nil {
		return nil, fmt.Errorf("open the recipient's helper: %w", err)
	}
	if err := poll(b, "the shared files are listed", `document.querySelectorAll("#offered tbody tr").length > 0 && document.getElementById("fetch-status").textContent.startsWith("Choose")`, 60*time.Second); err != nil {
		return nil, err
	}
	if err := r.shot(b, "recipient-list"); err != nil {
		return nil, err
	}
	start := time.Now()
	if err := chromedp.Do(b.Tab, chromedp.Click(chromedp.ID("download"))); err != nil {
		return nil, fmt.Errorf("click download: %w", err)
	}
	if err := poll(b, "the download finishes", `/^(Done|Failed)/.test(document.getElementById("fetch-status").textContent)`, 3*time.Minute); err != nil {
		return nil, err
	}
	r.res.Seconds = time.Since(start).Seconds()
	if r.res.RecipientPage, err = chromedp.Run(b.Tab, chromedp.Text(chromedp.ID("fetch-progress"))); err != nil {
		return nil, err
	}
	status, _ := chromedp.Run(b.Tab, chromedp.Text(chromedp.ID("fetch-status")))
	if !strings.HasPrefix(status, "Done") {
		r.shot(b, "recipient-failed")
		return nil, fmt.Errorf("the recipient's page says: %s", status)
	}
	return h, r.shot(b, "recipient-done")
}

// senderSawIt waits for the sender's page to show the recipient done.
func (r *run) senderSawIt(ctx context.Context, a *Browser) error {
	if err := poll(a, "the sender's page shows the recipient done", `/· done/.test(document.getElementById("recipients").textContent)`, 30*time.Second); err != nil {
		return err
	}
	var err error
	if r.res.SenderPage, err = chromedp.Run(a.Tab, chromedp.Text(chromedp.ID("recipients"))); err != nil {
		return err
	}
	return r.shot(a, "sender-done")
}
