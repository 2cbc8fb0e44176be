package report

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/machsend/machsend/experiments/classify"
	"github.com/machsend/machsend/experiments/spec"
)

// Every reason the model gives for a failure, over every combination it
// predicts (the golden file of experiments/spec), names a mechanism of the
// table, and every class the table names is one the classifier assigns.
func TestEveryModelFailureHasAMechanism(t *testing.T) {
	f, err := os.Open("../spec/testdata/model_golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	failures := 0
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) != 3 || cols[1] != "false" || strings.HasPrefix(cols[2], "unknown method") {
			continue
		}
		failures++
		if mechanismOf(cols[2]) == nil {
			t.Errorf("no mechanism for %q (%s)", cols[2], cols[0])
		}
	}
	if failures < 1000 {
		t.Fatalf("only %d failure reasons read from the golden file", failures)
	}
	known := classify.FailureClasses()
	for _, m := range mechanisms {
		for _, c := range m.classes {
			if !slices.Contains(known, c) {
				t.Errorf("%v names class %q, which the classifier never assigns", &m, c)
			}
		}
	}
}

// A trial agrees by mechanism only when its class shows the mechanism;
// one the classifier cannot see is counted apart.
func TestMechanismAgreement(t *testing.T) {
	tr := func(success, predicted bool, reason, class string) *spec.Trial {
		return &spec.Trial{Success: success, Predicted: predicted, Modelled: true, PredictedReason: reason, Class: class}
	}
	st := mechanismAgreement([]*spec.Trial{
		tr(true, true, "", "success/p2pnat"),
		tr(false, false, "A initiates: initiator's listener answers with a new ISN; strict sequence tracking drops that SYN-ACK; B initiates: neither NAT forwards an unsolicited SYN", "synack-invalid"),
		tr(false, false, "neither NAT forwards an unsolicited SYN (A filtering x)", "icmp-translated"),
		tr(false, false, "no hairpinning: a SYN to the NAT's own public address", "no-evidence"),
		tr(true, false, "neither NAT forwards an unsolicited SYN", "success/direct"),
	})
	if st.modelled != 5 || st.outcome != 4 || st.success != 1 || st.shown != 1 || st.unseen != 1 ||
		st.other[[2]string{"no NAT forwards an unsolicited SYN", "icmp-translated"}] != 1 {
		t.Errorf("%+v", st)
	}
}
