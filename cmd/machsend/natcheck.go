package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/machsend/machsend/rendezvous"
	"github.com/machsend/machsend/traversal"
)

// cmdNATCheck classifies the NAT this host is behind, as the rendezvous
// server sees it, and tests its filtering with connect-backs.
func cmdNATCheck(args []string) error {
	fs := flag.NewFlagSet("machsend natcheck", flag.ContinueOnError)
	server := fs.String("server", "", "rendezvous server IP:PORT (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *server == "" {
		return errors.New("natcheck: --server is required")
	}
	ap, err := netip.ParseAddrPort(*server)
	if err != nil {
		return fmt.Errorf("server %q: want IP:PORT", *server)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := rendezvous.Dial(ctx, *server, rendezvous.DialOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	h, err := c.Hello(ctx, nil, false)
	if err != nil {
		return err
	}
	sig := traversal.NewRendezvousSignal(c, ap, h.Secondary, "")
	info, err := traversal.ProbeNAT(ctx, sig, ap)
	if err != nil {
		return err
	}
	// Filtering: can the server reach the mapping of our control connection
	// from another port / another address? (Needs a listener on that port.)
	filtering := map[string]string{}
	for _, from := range []string{"other-port", "other-address"} {
		r, err := c.ConnectBack(ctx, rendezvous.ConnectBackParams{Target: h.Observed, From: from, TimeoutMs: 1500})
		if err != nil {
			filtering[from] = "error: " + err.Error()
			continue
		}
		filtering[from] = r.Outcome
	}
	if *asJSON {
		out := newJSONOut(os.Stdout)
		out.write("natcheck", map[string]any{"nat": info, "observed": h.Observed, "connect_back": filtering})
		return nil
	}
	fmt.Printf("public address: %s (observed %s)\nmapping: %s  preserving ports: %v  delta: %d\nhops to server: %d  (STUNT #2 TTL %d)\nconnect-back to our mapping: %v\n",
		info.Public, h.Observed, info.Mapping, info.Preserving, info.Delta, info.Hops, info.TTL, filtering)
	for _, o := range info.Observations {
		fmt.Println("  ", o)
	}
	return nil
}
