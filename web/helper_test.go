package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machsend/machsend/transfer"
)

// startHelper runs a helper; downloads go to a fresh folder.
func startHelper(t *testing.T, server netip.AddrPort) *Helper {
	t.Helper()
	h, err := New(Config{Server: server, DownloadDir: t.TempDir(), StageParent: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// page is a browser on the helper's own page: it opened the helper's URL
// (so it holds the cookie) and sends the Origin a browser sends.
type page struct {
	t    *testing.T
	h    *Helper
	c    *http.Client
	base string
}

func openPage(t *testing.T, h *Helper) *page {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	p := &page{t: t, h: h, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}, base: "http://" + h.Addr().String()}
	resp, err := p.c.Get(h.URL())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("Drop files and folders here")) {
		t.Fatalf("the helper's URL did not give its page: %d %s", resp.StatusCode, body)
	}
	if resp.Request.URL.RawQuery != "" {
		t.Fatalf("the token stayed in the address: %s", resp.Request.URL)
	}
	return p
}

// do sends a request as the page would; it returns the status and body.
func (p *page) do(method, path string, body io.Reader, hdr ...string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if method != http.MethodGet {
		req.Header.Set("Origin", p.base)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *page) put(path string, data string) int {
	code, _ := p.do(http.MethodPut, "/api/files?path="+url.QueryEscape(path), strings.NewReader(data))
	return code
}

func (p *page) state() State {
	p.t.Helper()
	code, body := p.do(http.MethodGet, "/api/state", nil)
	var st State
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		p.t.Fatalf("state: %d %s", code, body)
	}
	return st
}

// raw sends a request with exactly the given headers and cookie (or none).
func raw(t *testing.T, h *Helper, method, path, cookie string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+h.Addr().String()+path, strings.NewReader("{}"))
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: h.cookie, Value: cookie})
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestAttacksFailClosed tries what a web page elsewhere can make a
// browser do to a helper on 127.0.0.1, and what a page can ask of it.
func TestAttacksFailClosed(t *testing.T) {
	h := startHelper(t, netip.MustParseAddrPort("127.0.0.1:9"))
	self := "http://" + h.Addr().String()
	good := h.token
	tests := []struct {
		name, method, path, cookie string
		hdr                        map[string]string
		want                       int
	}{
		{"the page itself", "GET", "/api/state", good, nil, 200},
		{"no token", "GET", "/api/state", "", nil, 403},
		{"a wrong token", "GET", "/api/state", "x" + good[1:], nil, 403},
		{"a token in the URL of a POST", "POST", "/api/stop?t=" + good, "", map[string]string{"Origin": self}, 403},
		{"the first visit sets the cookie", "GET", "/?t=" + good, "", nil, 303},
		{"a wrong token in the URL", "GET", "/?t=" + good[1:], "", nil, 403},
		{"DNS rebinding: a foreign Host", "GET", "/api/state", good, map[string]string{"Host": "evil.example:" + h.cookie[len("machsend-"):]}, 421},
		{"DNS rebinding: the right port, another name", "GET", "/", good, map[string]string{"Host": "attacker.test"}, 421},
		{"a foreign Origin", "POST", "/api/stop", good, map[string]string{"Origin": "http://evil.example"}, 403},
		{"a null Origin (sandboxed frame)", "POST", "/api/stop", good, map[string]string{"Origin": "null"}, 403},
		{"another port of 127.0.0.1", "POST", "/api/stop", good, map[string]string{"Origin": "http://127.0.0.1:1"}, 403},
		{"a cross-site fetch", "GET", "/api/state", good, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"a same-site fetch from another port", "GET", "/api/state", good, map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"a POST without Origin", "POST", "/api/stop", good, nil, 403},
		{"a CORS preflight", "OPTIONS", "/api/share", good, map[string]string{"Origin": self, "Access-Control-Request-Method": "POST"}, 405},
		{"a share naming a path", "POST", "/api/share", good, map[string]string{"Origin": self}, 409}, // body {}: nothing staged
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := raw(t, h, tc.method, tc.path, tc.cookie, tc.hdr)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
			}
			if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") || resp.Header.Get("X-Frame-Options") != "DENY" {
				t.Fatalf("security headers missing: %v", resp.Header)
			}
			for k := range resp.Header {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Fatalf("CORS header %s sent", k)
				}
			}
			if tc.want == 303 {
				c := resp.Cookies()
				if len(c) != 1 || c[0].Value != good || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || resp.Header.Get("Location") != "/" {
					t.Fatalf("first visit: cookie %v, location %q", c, resp.Header.Get("Location"))
				}
			}
		})
	}
}

// TestUndroppedPathsRefused: the page can neither name a file on the disk
// to share, nor write outside the helper's staging folder, nor download
// outside the folder given on the command line.
func TestUndroppedPathsRefused(t *testing.T) {
	h := startHelper(t, netip.MustParseAddrPort("127.0.0.1:9"))
	p := openPage(t, h)
	outside := filepath.Dir(h.stageDir())
	for _, name := range []string{"../escaped", "../../etc/machsend-test", "/etc/machsend-test", "a/../../escaped", "", transfer.StateDir + "/x", "a\\..\\b"} {
		if code := p.put(name, "x"); code != 400 {
			t.Errorf("PUT %q: %d, want 400", name, code)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "escaped")); err == nil {
		t.Fatal("a file was written outside the staging folder")
	}
	// A symlink in the staging folder (which the helper never makes)
	// still leads nowhere: writes go through an os.Root.
	target := t.TempDir()
	if err := os.Symlink(target, filepath.Join(h.stageDir(), "link")); err != nil {
		t.Fatal(err)
	}
	if code := p.put("link/planted", "x"); code != 400 {
		t.Errorf("PUT through a symlink: %d, want 400", code)
	}
	if _, err := os.Stat(filepath.Join(target, "planted")); err == nil {
		t.Fatal("a write followed a symlink out of the staging folder")
	}
	// Asking to share a path by name is refused, not ignored.
	code, body := p.do(http.MethodPost, "/api/share", strings.NewReader(`{"paths":["/etc/passwd"]}`))
	if code != 400 || !strings.Contains(body, "unknown field") {
		t.Fatalf("share naming a path: %d %s", code, body)
	}
	// The download folder is not the page's to choose.
	code, body = p.do(http.MethodPost, "/api/download", strings.NewReader(`{"paths":[],"dir":"/etc"}`))
	if code != 400 || !strings.Contains(body, "unknown field") {
		t.Fatalf("download naming a folder: %d %s", code, body)
	}
	if st := p.state(); len(st.Staged) != 0 {
		t.Fatalf("refused uploads were staged: %v", st.Staged)
	}
}
