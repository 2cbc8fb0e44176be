package spec

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/machsend/machsend/nat"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/model_golden.txt from the current model")

// TestModelGolden pins the model: the prediction and reason for every
// ordered pair of built-in profiles, every topology kind and every method.
// The file was generated before the NAT vocabulary was unified (issue 13);
// a change to it is a change of the model and must be deliberate.
func TestModelGolden(t *testing.T) {
	profiles, err := nat.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	line := func(c Cell) {
		p, err := PredictUnder(c, nil, 0)
		if err != nil {
			t.Fatalf("%s: %v", c.Key(), err)
		}
		fmt.Fprintf(&b, "%s\t%v\t%s\n", c.Key(), p.Success, p.Reason)
	}
	methods := append([]string(nil), AllMethods...)
	for _, pa := range profiles {
		for _, m := range methods {
			line(Cell{Topology: "same-lan", Profiles: map[string]string{"nat": pa.Name}, Method: m})
			line(Cell{Topology: "one-public", Profiles: map[string]string{"nat-a": pa.Name}, Method: m})
		}
		for _, pb := range profiles {
			for _, m := range methods {
				line(Cell{Topology: "two-nat", Profiles: map[string]string{"nat-a": pa.Name, "nat-b": pb.Name}, Method: m})
				line(Cell{Topology: "double-nat", Profiles: map[string]string{"home-a": pa.Name, "cgn": pb.Name, "nat-b": "linux-default"}, Method: m})
			}
		}
	}
	path := filepath.Join("testdata", "model_golden.txt")
	if *updateGolden {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Compared as sets of lines: the order of methods is the method
	// table's, which is not part of the model.
	sorted := func(b []byte) [][]byte {
		l := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
		slices.SortFunc(l, bytes.Compare)
		return l
	}
	if gl, wl := sorted(b.Bytes()), sorted(want); !slices.EqualFunc(gl, wl, bytes.Equal) {
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if !bytes.Equal(gl[i], wl[i]) {
				t.Fatalf("model changed at line %d:\n got  %s\n want %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("model changed: %d lines, golden has %d", len(gl), len(wl))
	}
}
