package browser

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteReport writes the runs' results as browser.json and README.md (a
// table computed from them, and every screenshot) into dir.
func WriteReport(dir string, results []Result) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "browser.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	md.WriteString("# The browser experience, end to end\n\n")
	md.WriteString("Written by `experiment browser` (part of `make experiment`) from `browser.json`. Each run is a lab of two hosts behind NATs of the profile named, the real rendezvous server on the lab's internet, the real `machsend web` helper on each host and headless Chromium on each host driving the helper's page (see `experiments/browser`). The sender picks two files and a folder and shares them; the recipient opens the http link (the rendezvous server's landing page), hands its `machsend://` form to a helper as the desktop's handler would, lists the files and downloads everything.\n\n")
	md.WriteString("| run | NAT profile | path wanted | sender's path (events) | recipient's path (events) | files | bytes | byte-identical | download to Done (s) | check |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		check := "pass"
		if err := r.Check(); err != nil {
			check = "FAIL: " + strings.ReplaceAll(err.Error(), "\n", "; ")
		}
		fmt.Fprintf(&md, "| %s | %s | %s | %s | %s | %d | %d | %v | %.2f | %s |\n",
			r.Name, r.Profile, r.Want, r.SenderPath, r.RecipientPath, r.Files, r.Bytes, r.Identical, r.Seconds, check)
	}
	md.WriteString("\nWhat the pages said at the end (their own text):\n\n")
	for _, r := range results {
		fmt.Fprintf(&md, "- %s, sender: %q\n- %s, recipient: %q\n", r.Name, r.SenderPage, r.Name, r.RecipientPage)
	}
	for _, r := range results {
		fmt.Fprintf(&md, "\n## %s\n\n", r.Name)
		for _, s := range r.Screenshots {
			fmt.Fprintf(&md, "%s\n\n![%s](%s)\n\n", s, s, s)
		}
	}
	return os.WriteFile(filepath.Join(dir, "README.md"), []byte(md.String()), 0o644)
}
