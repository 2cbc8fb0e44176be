//go:build !windows

package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/rendezvous/rvtest"
)

// eventually polls the page's state until ok says it is reached.
func (p *page) eventually(what string, ok func(State) bool) State {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := p.state()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			if st.Share != nil {
				for _, r := range st.Share.Peers {
					p.t.Logf("recipient %+v", *r)
				}
			}
			p.t.Fatalf("%s: not reached; state %+v share %+v fetch %+v", what, st, st.Share, st.Fetch)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestShareAndDownloadThroughHelpers: one helper shares what its page
// uploaded (two files and a folder with an empty sub-folder), another
// opens the link, lists it, downloads a part and then the rest; the files
// arrive byte-identical and the sharer's page shows each recipient.
func TestShareAndDownloadThroughHelpers(t *testing.T) {
	srv := rvtest.Start(t, rendezvous.Config{})
	a, b := startHelper(t, srv), startHelper(t, srv)
	pa, pb := openPage(t, a), openPage(t, b)
	big := bytes.Repeat([]byte("machsend 2009 "), 300_000) // 4 MiB
	files := map[string][]byte{"notes.txt": []byte("hello\n"), "photo.jpg": big, "album/2009/one.txt": []byte("one"), "album/two.txt": []byte("two")}
	for name, data := range files {
		if code := pa.put(name, string(data)); code != 204 {
			t.Fatalf("PUT %s: %d", name, code)
		}
	}
	if code, _ := pa.do(http.MethodPut, "/api/files?path=album/empty&dir=1", nil); code != 204 {
		t.Fatalf("PUT empty folder: %d", code)
	}
	if st := pa.state(); len(st.Staged) != 5 {
		t.Fatalf("staged: %v", st.Staged)
	}
	code, body := pa.do(http.MethodPost, "/api/share", strings.NewReader("{}"))
	if code != 200 {
		t.Fatalf("share: %d %s", code, body)
	}
	st := pa.state()
	if st.Share == nil || !strings.HasPrefix(st.Share.Link, "http://"+srv.String()+"/s/") {
		t.Fatalf("share state: %+v", st.Share)
	}
	if code := pa.put("late.txt", "x"); code != 409 {
		t.Fatalf("adding a file while sharing: %d, want 409", code)
	}
	if code, _ := pa.do(http.MethodGet, "/api/qr.png", nil); code != 200 {
		t.Fatalf("QR: %d", code)
	}

	// The recipient opens the link and sees the list.
	if code, body := pb.do(http.MethodPost, "/api/open", strings.NewReader(`{"link":"`+st.Share.Link+`"}`)); code != 204 {
		t.Fatalf("open: %d %s", code, body)
	}
	got := pb.eventually("list", func(s State) bool { return s.Fetch != nil && s.Fetch.Status == "ready" })
	if len(got.Fetch.Entries) != 7 || got.Fetch.Bytes != int64(len(big)+6+3+3) { // album, album/2009, album/empty, 4 files
		t.Fatalf("listed %d entries, %d bytes: %+v", len(got.Fetch.Entries), got.Fetch.Bytes, got.Fetch.Entries)
	}
	// A path not in the list is refused.
	if code, _ := pb.do(http.MethodPost, "/api/download", strings.NewReader(`{"paths":["/etc/passwd"]}`)); code != 409 {
		t.Fatalf("download of an unlisted path: %d", code)
	}
	// Some, then all (what is there already is skipped, as with get).
	for _, sel := range []string{`{"paths":["album"]}`, `{"paths":[]}`} {
		if code, body := pb.do(http.MethodPost, "/api/download", strings.NewReader(sel)); code != 204 {
			t.Fatalf("download %s: %d %s", sel, code, body)
		}
		done := pb.eventually("download "+sel, func(s State) bool { return s.Fetch.Status == "done" || s.Fetch.Status == "failed" })
		if done.Fetch.Status != "done" || done.Fetch.Now == nil || done.Fetch.Now.Path == "" {
			t.Fatalf("download %s: %+v %+v", sel, done.Fetch, done.Fetch.Now)
		}
		if sel == `{"paths":["album"]}` {
			if _, err := os.Stat(filepath.Join(b.cfg.DownloadDir, "photo.jpg")); err == nil {
				t.Fatal("a file that was not selected arrived")
			}
		}
	}
	for name, data := range files {
		on, err := os.ReadFile(filepath.Join(b.cfg.DownloadDir, name))
		if err != nil || !bytes.Equal(on, data) {
			t.Fatalf("%s: not byte-identical (%v)", name, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(b.cfg.DownloadDir, "album/empty")); err != nil || !fi.IsDir() {
		t.Fatalf("empty folder: %v", err)
	}
	// The sharer saw three recipients: one looked at the list, two
	// downloaded.
	sh := pa.eventually("recipients", func(s State) bool {
		var got []string
		for _, r := range s.Share.Peers {
			got = append(got, r.Status)
		}
		return strings.Join(got, " ") == "listed done done"
	})
	if sh.Share.Peers[2].Path == "" || sh.Share.Peers[2].Total == 0 {
		t.Fatalf("recipient view: %+v", sh.Share.Peers[2])
	}
	// Stopping ends the link.
	if code, _ := pa.do(http.MethodPost, "/api/stop", strings.NewReader("{}")); code != 204 {
		t.Fatal("stop")
	}
	pa.eventually("stopped", func(s State) bool { return !s.Share.Sharing })
}

// TestStateSendsListsOnlyWhenChanged: the page polls twice a second; the
// lists come only with a new version (a share may hold many files).
func TestStateSendsListsOnlyWhenChanged(t *testing.T) {
	h := startHelper(t, netip.MustParseAddrPort("127.0.0.1:9"))
	p := openPage(t, h)
	get := func(have string) State {
		code, body := p.do(http.MethodGet, "/api/state?lists="+have, nil)
		var st State
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			t.Fatalf("state: %d %s", code, body)
		}
		return st
	}
	for i := range 3 {
		if code := p.put(fmt.Sprintf("f%d.txt", i), "x"); code != 204 {
			t.Fatal(code)
		}
	}
	first := get("")
	if len(first.Staged) != 3 || first.Lists == "" {
		t.Fatalf("first poll: %+v", first)
	}
	if again := get(first.Lists); again.Staged != nil || again.Lists != first.Lists {
		t.Fatalf("unchanged lists sent again: %+v", again)
	}
	p.put("f3.txt", "x")
	if changed := get(first.Lists); len(changed.Staged) != 4 || changed.Lists == first.Lists {
		t.Fatalf("after a change: %+v", changed)
	}
}
