package web

import (
	"crypto/subtle"
	"net/http"
)

// securityHeaders go on every answer: no script, style or image from
// anywhere but the helper, no framing, no referrer, no caching, no
// sniffing. There is no Access-Control-* header on any answer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Frame-Options":              "DENY",
	"X-Content-Type-Options":       "nosniff",
	"Referrer-Policy":              "no-referrer",
	"Cache-Control":                "no-store",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// refusal is why guard refuses a request, with the status it answers.
type refusal struct {
	status int
	text   string
}

var (
	refuseHost   = refusal{http.StatusMisdirectedRequest, "this helper only answers requests addressed to itself (127.0.0.1 and its port)"}
	refuseOrigin = refusal{http.StatusForbidden, "cross-site request refused: only the helper's own page may use it"}
	refuseToken  = refusal{http.StatusForbidden, "missing or wrong token: open the address that machsend web printed"}
	refuseMethod = refusal{http.StatusMethodNotAllowed, "method not allowed (the helper answers no CORS preflight)"}
)

// guard lets through only requests from the helper's own page (see the
// package doc). A first visit with the token in the URL (?t=) sets the
// cookie and is redirected to the same page without it, so the token
// does not stay in the address bar or the history.
func (h *Helper) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range securityHeaders {
			w.Header().Set(k, v)
		}
		if rf, ok := h.check(r); !ok {
			http.Error(w, rf.text, rf.status)
			return
		}
		if t := r.URL.Query().Get("t"); t != "" && r.Method == http.MethodGet {
			http.SetCookie(w, &http.Cookie{Name: h.cookie, Value: h.token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			http.Redirect(w, r, r.URL.Path, http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// check applies the rules in order: the helper's own Host, a same-origin
// request, a method the helper uses, the token.
func (h *Helper) check(r *http.Request) (refusal, bool) {
	if !h.hosts[r.Host] {
		return refuseHost, false
	}
	origin := r.Header.Get("Origin")
	if origin != "" && origin != "http://"+r.Host {
		return refuseOrigin, false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return refuseOrigin, false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost, http.MethodPut, http.MethodDelete:
		// Browsers send Origin with every such request; a request without
		// one did not come from a page of this helper.
		if origin == "" {
			return refuseOrigin, false
		}
	default:
		return refuseMethod, false
	}
	if !h.tokenOK(r) {
		return refuseToken, false
	}
	return refusal{}, true
}

// tokenOK: the cookie holds the token, or (first visit only, a GET) the
// URL does.
func (h *Helper) tokenOK(r *http.Request) bool {
	if c, err := r.Cookie(h.cookie); err == nil && equal(c.Value, h.token) {
		return true
	}
	return r.Method == http.MethodGet && equal(r.URL.Query().Get("t"), h.token)
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
