package transfer

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// LinkScheme starts the app form of a link, the one a desktop hands to
// the machsend helper registered for the scheme (machsend web
// --install-handler).
const LinkScheme = "machsend://"

// WebScheme starts the form of a link people share: an ordinary http URL
// on the rendezvous server, which serves a landing page at WebPath+SESSION.
const WebScheme = "http://"

// WebPath is the landing page's path on the rendezvous server, before the
// session id.
const WebPath = "/s/"

// SecretLen is the link secret's length in bytes (256 bits).
const SecretLen = 32

// ErrLink is wrapped by every link parsing error.
var ErrLink = errors.New("malformed machsend link")

// Link names the rendezvous server and session, and carries the secret that
// authenticates the peers. The secret is the part after '#', the URL's
// fragment: a browser never sends it to the server, and neither does
// machsend. A link has two spellings, both parsed by ParseLink:
//
//	http://192.0.2.2:3478/s/0123456789abcdef0123456789abcdef#<base64url secret>  (String: to share)
//	machsend://192.0.2.2:3478/0123456789abcdef0123456789abcdef#<base64url secret> (App: for the helper)
type Link struct {
	// Server is the rendezvous server's address; Host, when set, is the
	// name it was given by ("rv.example.org:3478"), which the link shows
	// and a receiver resolves (Server is then zero until resolved).
	Server  netip.AddrPort
	Host    string
	Session string
	Secret  []byte
	// Pin, if set, is the server's TLS key pin (rendezvous.Pin): the
	// receiver then speaks TLS to the server and accepts only that key.
	// It is public, so it travels in the URL's query (?pin=).
	Pin string
}

// query is the link's query part ("" or "?pin=...").
func (l Link) query() string {
	if l.Pin == "" {
		return ""
	}
	return "?pin=" + l.Pin
}

// Where is the server as the link shows it: Host if set, else Server.
func (l Link) Where() string {
	if l.Host != "" {
		return l.Host
	}
	return l.Server.String()
}

// NewSecret returns a fresh random link secret.
func NewSecret() []byte {
	b := make([]byte, SecretLen)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return b
}

// String renders the link as people share it: an http URL of the
// rendezvous server's landing page (see WebScheme).
func (l Link) String() string {
	return fmt.Sprintf("%s%s%s%s%s#%s", WebScheme, l.Where(), WebPath, l.Session, l.query(), base64.RawURLEncoding.EncodeToString(l.Secret))
}

// App renders the link in the machsend:// form that opens the helper.
func (l Link) App() string {
	return fmt.Sprintf("%s%s/%s%s#%s", LinkScheme, l.Where(), l.Session, l.query(), base64.RawURLEncoding.EncodeToString(l.Secret))
}

// linkForms are the spellings ParseLink accepts: a scheme and what comes
// between the server and the session id.
var linkForms = []struct{ scheme, sep string }{
	{WebScheme, WebPath},
	{LinkScheme, "/"},
}

// ParseLink parses and validates a link in either form (see Link).
func ParseLink(s string) (Link, error) {
	s = strings.TrimSpace(s)
	if len(s) > 512 {
		return Link{}, fmt.Errorf("%w: too long", ErrLink)
	}
	for _, f := range linkForms {
		if rest, ok := strings.CutPrefix(s, f.scheme); ok {
			return parseLinkBody(rest, f.scheme, f.sep)
		}
	}
	return Link{}, fmt.Errorf("%w: it must start with %s or %s", ErrLink, WebScheme, LinkScheme)
}

// parseLinkBody parses SERVER<sep>SESSION#SECRET.
func parseLinkBody(rest, scheme, sep string) (Link, error) {
	body, frag, ok := strings.Cut(rest, "#")
	if !ok || frag == "" {
		return Link{}, fmt.Errorf("%w: the secret after '#' is missing (was the link cut short?)", ErrLink)
	}
	server, session, ok := strings.Cut(body, sep)
	if !ok {
		return Link{}, fmt.Errorf("%w: want %sSERVER%sSESSION#SECRET", ErrLink, scheme, sep)
	}
	l := Link{}
	if ap, err := ParseLinkServer(server); err == nil {
		l.Server = ap
	} else if ValidHostPort(server) {
		l.Host = strings.ToLower(server)
	} else {
		return Link{}, fmt.Errorf("%w: server %q is neither IPv4:port, [IPv6]:port nor host:port", ErrLink, server)
	}
	session, query, hasQuery := strings.Cut(session, "?")
	if hasQuery {
		pin, ok := strings.CutPrefix(query, "pin=")
		if !ok || !ValidPin(pin) {
			return Link{}, fmt.Errorf("%w: after '?' only pin=<43 base64url characters> may come", ErrLink)
		}
		l.Pin = pin
	}
	if len(session) != 32 {
		return Link{}, fmt.Errorf("%w: session id must be 32 hex digits", ErrLink)
	}
	if _, err := hex.DecodeString(session); err != nil {
		return Link{}, fmt.Errorf("%w: session id must be 32 hex digits", ErrLink)
	}
	secret, err := base64.RawURLEncoding.DecodeString(frag)
	if err != nil || len(secret) < 16 {
		return Link{}, fmt.Errorf("%w: secret must be at least 128 bits of base64url", ErrLink)
	}
	l.Session, l.Secret = strings.ToLower(session), secret
	return l, nil
}

// ParseLinkServer parses a rendezvous server endpoint: IPv4:port or
// [IPv6]:port, without a zone (a link names a server anyone can reach);
// an IPv4-mapped IPv6 address is its IPv4 one.
func ParseLinkServer(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" || ap.Addr().IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("server %q: want IPv4:port or [IPv6]:port", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// ValidHostPort says whether s is a DNS host name and a port (1-65535):
// labels of letters, digits and hyphens, not starting or ending with a
// hyphen, at most 63 bytes each and 253 in all, with a letter somewhere
// (so that an address is never taken for a name).
func ValidHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 || port[0] == '0' {
		return false
	}
	if host == "" || len(host) > 253 || !strings.ContainsAny(strings.ToLower(host), "abcdefghijklmnopqrstuvwxyz") {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// ValidPin says whether s has a TLS key pin's form: SHA-256 in unpadded
// base64url (43 characters).
func ValidPin(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32 && len(s) == 43
}
