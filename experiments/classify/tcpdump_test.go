package classify

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tcpdump lines for the packets the classifier reads: TCP segments and
// ICMP messages (-nn -tt -S: numbers, epoch times, absolute sequence numbers).
var (
	tcpdumpTCP  = regexp.MustCompile(`^(\d+\.\d+) IP (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\](?:, seq (\d+))?`)
	tcpdumpICMP = regexp.MustCompile(`^(\d+\.\d+) IP (\S+) > (\S+): ICMP ([^,]+)`)
)

// The classifier's packet decoder agrees with tcpdump, a decoder nobody
// here wrote, on every TCP segment and ICMP message of every recorded test
// capture: time to the microsecond, endpoints, flags, sequence number, and
// the kind of ICMP error.
func TestDecoderAgreesWithTcpdump(t *testing.T) {
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tcpdump not installed (make deps installs it): %v", err)
		}
		t.Skip("tcpdump not installed (make deps installs it)")
	}
	files, _ := filepath.Glob("testdata/classify/*/*.pcap*")
	if len(files) == 0 {
		t.Fatal("no recorded captures")
	}
	total := 0
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, "testdata/classify/"), func(t *testing.T) {
			ours := ourLines(t, f)
			theirs := tcpdumpLines(t, bin, f)
			if !slices.Equal(ours, theirs) {
				for i := 0; i < max(len(ours), len(theirs)); i++ {
					o, th := at(ours, i), at(theirs, i)
					if o != th {
						t.Fatalf("packet %d: classifier %q, tcpdump %q (%d vs %d packets)", i, o, th, len(ours), len(theirs))
					}
				}
			}
			total += len(ours)
		})
	}
	t.Logf("%d packets in %d captures decoded alike", total, len(files))
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "(none)"
}

// ourLines renders what decode made of each packet, in one normal form.
func ourLines(t *testing.T, path string) []string {
	pkts, err := ReadPcap(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pkts {
		s, ok := decode(p)
		if !ok {
			continue
		}
		us := s.t.UnixMicro()
		if s.icmp != "" {
			out = append(out, fmt.Sprintf("%d %s > %s icmp %s", us, s.src.Addr(), s.dst.Addr(), icmpKind(s.icmp)))
			continue
		}
		seq := ""
		if strings.Contains(s.flags, "S") {
			seq = fmt.Sprint(s.seq) // tcpdump prints seq for SYNs and data only
		}
		out = append(out, fmt.Sprintf("%d %s > %s [%s] %s", us, s.src, s.dst, normFlags(s.flags), seq))
	}
	return out
}

// tcpdumpLines runs tcpdump on the capture (decompressed if gzipped).
func tcpdumpLines(t *testing.T, bin, path string) []string {
	pkts, err := ReadPcap(path) // ReadPcap undoes gzip; rewrite plain for tcpdump
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(t.TempDir(), "plain.pcap")
	if err := WritePcap(plain, pkts); err != nil {
		t.Fatal(err)
	}
	raw, err := exec.Command(bin, "-r", plain, "-nn", "-tt", "-S").Output()
	if err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		l := sc.Text()
		if m := tcpdumpTCP.FindStringSubmatch(l); m != nil {
			seq := ""
			if strings.Contains(m[6], "S") {
				seq = m[7]
			}
			out = append(out, fmt.Sprintf("%d %s:%s > %s:%s [%s] %s", micros(t, m[1]), m[2], m[3], m[4], m[5], normFlags(m[6]), seq))
		} else if m := tcpdumpICMP.FindStringSubmatch(l); m != nil {
			out = append(out, fmt.Sprintf("%d %s > %s icmp %s", micros(t, m[1]), m[2], m[3], icmpKind(m[4])))
		}
	}
	return out
}

func micros(t *testing.T, s string) int64 {
	sec, frac, _ := strings.Cut(s, ".")
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("tcpdump time %q", s)
	}
	return a*int64(time.Second/time.Microsecond) + b
}

// normFlags keeps SYN, ACK, RST and FIN ("." is tcpdump's ACK), in one order.
func normFlags(f string) string {
	out := ""
	for _, c := range []struct{ ours, theirs string }{{"S", "S"}, {"A", "."}, {"R", "R"}, {"F", "F"}} {
		if strings.Contains(f, c.ours) || strings.Contains(f, c.theirs) {
			out += c.ours
		}
	}
	return out
}

// icmpKind is the ICMP message's kind in both decoders' words.
func icmpKind(s string) string {
	l := strings.ToLower(s)
	switch {
	case strings.Contains(l, "timeexceeded") || strings.Contains(l, "time exceeded"):
		return "time-exceeded"
	case strings.Contains(l, "unreachable"):
		return "unreachable"
	}
	return l
}
