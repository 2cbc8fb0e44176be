package natlab

import (
	"net/netip"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func query(t testing.TB, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDNSAnswers: a lab name server answers its names (any case) with
// their address, other types of a known name with no record, unknown
// names with "no such name", and drops what is not a query.
func TestDNSAnswers(t *testing.T) {
	d := &DNS{records: map[string][]netip.Addr{
		fqdn("Rendezvous.Lab.Test"): {netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8:0:1::2")},
		fqdn("v4only.lab.test"):     {netip.MustParseAddr("192.0.2.3")},
	}}
	response := query(t, "x.", dnsmessage.TypeA)
	response[2] |= 0x80 // QR: a response, not a query
	for _, tc := range []struct {
		name  string
		req   []byte
		ok    bool
		rcode dnsmessage.RCode
		addr  string
	}{
		{"known name", query(t, "rendezvous.lab.test.", dnsmessage.TypeA), true, dnsmessage.RCodeSuccess, "192.0.2.2"},
		{"other case", query(t, "RENDEZVOUS.lab.test.", dnsmessage.TypeA), true, dnsmessage.RCodeSuccess, "192.0.2.2"},
		{"AAAA of a known name", query(t, "rendezvous.lab.test.", dnsmessage.TypeAAAA), true, dnsmessage.RCodeSuccess, "2001:db8:0:1::2"},
		{"AAAA of an IPv4-only name", query(t, "v4only.lab.test.", dnsmessage.TypeAAAA), true, dnsmessage.RCodeSuccess, ""},
		{"MX of a known name", query(t, "rendezvous.lab.test.", dnsmessage.TypeMX), true, dnsmessage.RCodeSuccess, ""},
		{"unknown name", query(t, "example.com.", dnsmessage.TypeA), true, dnsmessage.RCodeNameError, ""},
		{"a response", response, false, 0, ""},
		{"garbage", []byte{1, 2, 3}, false, 0, ""},
		{"empty", nil, false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, ok := d.answer(tc.req)
			if ok != tc.ok {
				t.Fatalf("answered %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(resp)
			if err != nil || h.ID != 7 || !h.Response || h.RCode != tc.rcode {
				t.Fatalf("header %+v, %v", h, err)
			}
			if err := p.SkipAllQuestions(); err != nil {
				t.Fatal(err)
			}
			answers, err := p.AllAnswers()
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, a := range answers {
				switch r := a.Body.(type) {
				case *dnsmessage.AResource:
					got = netip.AddrFrom4(r.A).String()
				case *dnsmessage.AAAAResource:
					got = netip.AddrFrom16(r.AAAA).String()
				}
			}
			if got != tc.addr {
				t.Errorf("answer %q, want %q", got, tc.addr)
			}
		})
	}
}

// FuzzDNSAnswer: no query, however malformed, panics the lab's name
// server, and every answer it gives parses.
func FuzzDNSAnswer(f *testing.F) {
	f.Add(query(f, "rendezvous.lab.test.", dnsmessage.TypeA))
	f.Add(query(f, "a.b.", dnsmessage.TypeAAAA))
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})
	d := &DNS{records: map[string][]netip.Addr{"rendezvous.lab.test.": {netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")}}}
	f.Fuzz(func(t *testing.T, req []byte) {
		resp, ok := d.answer(req)
		if !ok {
			return
		}
		var p dnsmessage.Parser
		if _, err := p.Start(resp); err != nil {
			t.Fatalf("unparsable answer: %v", err)
		}
	})
}
