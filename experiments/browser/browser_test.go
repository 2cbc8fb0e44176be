package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machsend/machsend/internal/buildtest"
	"github.com/machsend/machsend/natlab/natlabtest"
)

// TestBrowserEndToEnd runs every case with real Chromium in the lab: the
// files arrive byte-identical through the wanted path, both pages show it,
// and every step left a screenshot. The screenshots stay in
// $MACHSEND_BROWSER_SHOTS when set (make experiment keeps its own in
// results/browser).
func TestBrowserEndToEnd(t *testing.T) {
	natlabtest.RequireRoot(t)
	if _, err := exec.LookPath("chromium"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is missing under CI=true (make deps installs it): %v", err)
		}
		t.Skipf("skipping: no chromium (make deps installs it): %v", err)
	}
	bin := buildtest.Commands(t, "machsend", "rendezvous")
	out := os.Getenv("MACHSEND_BROWSER_SHOTS")
	if out == "" {
		out = t.TempDir()
	}
	for _, c := range Cases {
		t.Run(c.Name, func(t *testing.T) {
			res, err := Run(context.Background(), c, bin, out)
			if err != nil {
				t.Fatalf("%v\nsender's events:\n%s\nrecipient's events:\n%s", err, strings.Join(res.SenderTimeline, "\n"), strings.Join(res.RecipientTimeline, "\n"))
			}
			if err := res.Check(); err != nil {
				t.Fatalf("%v\nsender's events:\n%s\nrecipient's events:\n%s", err, strings.Join(res.SenderTimeline, "\n"), strings.Join(res.RecipientTimeline, "\n"))
			}
			if res.Files != 4 || len(res.Screenshots) != 6 {
				t.Fatalf("%d files, screenshots %v", res.Files, res.Screenshots)
			}
			for _, s := range res.Screenshots {
				if fi, err := os.Stat(filepath.Join(out, s)); err != nil || fi.Size() < 1000 {
					t.Fatalf("screenshot %s: %v", s, err)
				}
			}
			t.Logf("%s: sender %q, recipient %q, %d files, %d bytes in %.2f s", c.Name, res.SenderPage, res.RecipientPage, res.Files, res.Bytes, res.Seconds)
		})
	}
}
