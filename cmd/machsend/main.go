// Command machsend shares files peer to peer through NATs (send, get), and
// exposes the traversal machinery for experiments (punch, natcheck).
//
//	machsend punch --server IP:PORT [--session ID] --method M --json
//	machsend natcheck --server IP:PORT [--json]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

const usage = `machsend: share files peer to peer, through NATs

usage:
  machsend punch --server IP:PORT [--session ID] [--method M] [--json]
  machsend natcheck --server IP:PORT [--json]
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "punch":
		err = cmdPunch(os.Args[2:])
	case "natcheck":
		err = cmdNATCheck(os.Args[2:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return
	default:
		err = fmt.Errorf("unknown command %q (see machsend help)", os.Args[1])
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "machsend: %v\n", err)
		os.Exit(1)
	}
}
