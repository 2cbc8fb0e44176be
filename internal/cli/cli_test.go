package cli

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		pos     []string
		out     string
		verbose bool
		err     bool
	}{
		{"flags first", []string{"--out", "d", "spec"}, []string{"spec"}, "d", false, false},
		{"flags after", []string{"spec", "--out", "d", "-v"}, []string{"spec"}, "d", true, false},
		{"interleaved", []string{"a", "-v", "b", "--out=d", "c"}, []string{"a", "b", "c"}, "d", true, false},
		{"dashdash first", []string{"--", "-v", "x"}, []string{"-v", "x"}, "", false, false},
		{"dashdash after positional", []string{"lab", "--", "ping", "-c", "1"}, []string{"lab", "ping", "-c", "1"}, "", false, false},
		{"dashdash after flag", []string{"-v", "--", "--out", "x"}, []string{"--out", "x"}, "", true, false},
		{"unknown flag after positional", []string{"a", "--nope"}, nil, "", false, true},
		{"none", nil, nil, "", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			out := fs.String("out", "", "")
			v := fs.Bool("v", false, "")
			pos, err := Parse(fs, c.args)
			if (err != nil) != c.err {
				t.Fatalf("err = %v, want error %v", err, c.err)
			}
			if err != nil {
				return
			}
			if !slices.Equal(pos, c.pos) || *out != c.out || *v != c.verbose {
				t.Errorf("Parse(%q) = %q, out %q, v %v; want %q, %q, %v", c.args, pos, *out, *v, c.pos, c.out, c.verbose)
			}
		})
	}
}
