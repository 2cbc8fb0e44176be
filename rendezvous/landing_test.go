package rendezvous

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// webGet fetches path from the server's rendezvous port with a fresh
// connection (no keep-alive between cases).
func webGet(t *testing.T, base, path string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestLandingPage(t *testing.T) {
	_, addr := startServer(t, Config{})
	a := dial(t, addr)
	cr, err := a.Create(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr.String()
	tests := []struct {
		name, path string
		status     int
		want       string
	}{
		{"a live share", "/s/" + cr.Session, 200, "Open in machsend"},
		{"a share that ended", "/s/" + strings.Repeat("0", 32), 404, "no longer works"},
		{"not a session id", "/s/../../etc/passwd", 404, "32 hex digits"},
		{"the server's own page", "/", 200, "rendezvous server"},
		{"the script", "/landing.js", 200, "machsend://"},
		{"anything else", "/admin", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := webGet(t, base, tc.path)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("GET %s: %d, want %d with %q:\n%s", tc.path, resp.StatusCode, tc.status, tc.want, body)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "default-src 'none'") || resp.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Fatalf("security headers missing: %v", resp.Header)
			}
			if resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatal("CORS header sent")
			}
		})
	}
	// The session id is the only thing of the link the server sees; the
	// page must not echo anything else of the URL.
	_, body := webGet(t, base, "/s/"+cr.Session+"?x=<script>")
	if strings.Contains(body, "<script>") && !strings.Contains(body, `<script src="/landing.js"`) {
		t.Fatal("the page echoes the query")
	}
	// The rendezvous protocol still works on the same port, for the same
	// client and for new ones.
	b := dial(t, addr)
	if _, err := b.Join(context.Background(), cr.Session, ""); err != nil {
		t.Fatalf("join after web requests: %v", err)
	}
}

// TestLandingBounded: browsers (or a flood posing as browsers) get at most
// webPerAddr connections from one address, slow ones are cut by the
// header timeout, and none of it takes a rendezvous client's place.
func TestLandingBounded(t *testing.T) {
	s, addr := startServer(t, Config{})
	var slow []net.Conn
	for i := 0; i < webPerAddr; i++ {
		c, err := net.Dial("tcp4", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")) // never finished
		slow = append(slow, c)
	}
	waitFor(t, func() bool { return len(s.web.slots) == webPerAddr })
	// One more from the same address is closed at once.
	extra, err := net.Dial("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	extra.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("connection over the per-address cap was served: n=%d err=%v", n, err)
	}
	// Rendezvous clients are unaffected.
	c := dial(t, addr)
	if _, err := c.Create(context.Background(), ""); err != nil {
		t.Fatalf("create while browsers hold their cap: %v", err)
	}
	// The header timeout ends the slow ones, freeing their places.
	for _, c := range slow {
		c.SetReadDeadline(time.Now().Add(webHeaderTimeout + 3*time.Second))
		r := bufio.NewReader(c)
		if _, err := r.ReadString('\n'); err == nil {
			// the server may answer 408 before closing; then it closes
			_, err = io.Copy(io.Discard, r)
			if isTimeout(err) {
				t.Fatal("slow request not closed after the header timeout")
			}
		} else if isTimeout(err) {
			t.Fatal("slow request not closed after the header timeout")
		}
	}
	waitFor(t, func() bool { return len(s.web.slots) == 0 })
	if resp, _ := webGet(t, "http://"+addr.String(), "/"); resp.StatusCode != 200 {
		t.Fatalf("after the timeout: %d", resp.StatusCode)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
